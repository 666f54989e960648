using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Redis.Cluster;

/// <summary>
/// A Redis Cluster client behind <see cref="IRedisClient"/>: seeded from one node, it learns the slot map with
/// <c>CLUSTER SLOTS</c>, keeps one pipelined <see cref="RespClient"/> per master and sends each command to the
/// master serving its keys' slot. Keys of different slots are refused before sending (CROSSSLOT, the server's
/// wording); this is why the product's keys carry <c>{tag}</c> hash tags.
/// </summary>
/// <remarks>
/// <para>Redirections: MOVED updates that slot, triggers one (single-flight) refresh of the whole map and
/// retries on the named node; ASK sends <c>ASKING</c> and the command back to back on the target's connection
/// without touching the map; TRYAGAIN retries after a short delay. After <see cref="MaxRedirections"/> the
/// command fails with <see cref="RedisConnectionException"/>.</para>
/// <para>A node that cannot be reached fails the command with <see cref="RedisConnectionException"/> (callers
/// answer 503) and refreshes the map in the background, since a failover may have moved its slots. Commands
/// are never retried after a connection failure: they may have run.</para>
/// <para>Pub/sub: channels are subscribed on one node (Redis 7 forwards PUBLISH to every node of the cluster);
/// when that node goes away the subscriber moves to another master, subscribes again and raises
/// <see cref="Reconnected"/>. Blocking commands need a client from <see cref="CreateDedicatedAsync"/>.</para>
/// </remarks>
public sealed class RedisClusterClient : IRedisClient
{
    /// <summary>Redirections (MOVED, ASK, TRYAGAIN) followed for one command before it fails.</summary>
    public const int MaxRedirections = 5;

    private readonly ILogger _logger;
    private readonly ClusterTopology _topology;
    private readonly Lock _subscriberLock = new();
    private RespClient? _subscriber; // under _subscriberLock
    private int _nextSubscriberNode = -1;
    private int _disposed;

    /// <summary>Creates the client and loads the slot map in the background; commands fail fast with
    /// <see cref="RedisConnectionException"/> until it is known. <see cref="ConnectAsync(RespClientOptions, ILogger?, CancellationToken)"/> waits for it.</summary>
    public RedisClusterClient(RespClientOptions options, ILogger? logger = null)
        : this(options, logger, dedicated: false) =>
        _topology.RequestRefresh();

    private RedisClusterClient(RespClientOptions options, ILogger? logger, bool dedicated)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options with { Cluster = true };
        IsDedicated = dedicated;
        _logger = logger ?? NullLogger.Instance;
        _topology = new ClusterTopology(Options, _logger, dedicated);
    }

    /// <summary>The seed node's address and the settings every node's connection uses.</summary>
    public RespClientOptions Options { get; }

    /// <summary>True for clients from <see cref="CreateDedicatedAsync"/>: blocking commands are allowed on them.</summary>
    public bool IsDedicated { get; }

    /// <inheritdoc />
    /// <remarks>True when the slot map is known and a node's command connection is up.</remarks>
    public bool IsConnected => _topology.IsConnected;

    /// <inheritdoc />
    public event Action? Reconnected;

    /// <summary>The masters of the current slot map as "host:port" (empty until it is known).</summary>
    public IReadOnlyList<string> MasterEndPoints =>
        _topology.Map?.Masters is { } masters ? [.. masters.Select(m => m.EndPoint)] : [];

    /// <summary>The "host:port" of the master this client sends <paramref name="slot"/>'s commands to, or null.</summary>
    public string? EndPointForSlot(int slot)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(slot);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(slot, RedisKeySlot.Count);
        return _topology.Map?.OwnerOf(slot)?.EndPoint;
    }

    /// <summary>Creates a client and waits until the slot map is loaded from the seed node.</summary>
    /// <exception cref="RedisConnectionException">The seed cannot be reached or is not a cluster node; the client is disposed.</exception>
    public static Task<RedisClusterClient> ConnectAsync(RespClientOptions options, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(options, logger, dedicated: false, cancellationToken);

    /// <summary>Parses <paramref name="connectionString"/> (see <see cref="RespClientOptions.Parse"/>) and connects.</summary>
    public static Task<RedisClusterClient> ConnectAsync(string connectionString, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(RespClientOptions.Parse(connectionString), logger, dedicated: false, cancellationToken);

    /// <summary>Opens a separate cluster client with its own connections (same options) for blocking commands
    /// such as <c>XREADGROUP ... BLOCK</c>; mirrors <see cref="RespClient.CreateDedicatedAsync"/>. The caller disposes it.</summary>
    public Task<RedisClusterClient> CreateDedicatedAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return ConnectAsync(Options, _logger, dedicated: true, cancellationToken);
    }

    private static async Task<RedisClusterClient> ConnectAsync(RespClientOptions options, ILogger? logger, bool dedicated, CancellationToken cancellationToken)
    {
        var client = new RedisClusterClient(options, logger, dedicated);
        try
        {
            await client._topology.RefreshAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>Keyless commands (PING, TIME, PUBLISH, ...) go to any master; node-wide ones (FLUSHALL, DBSIZE,
    /// SCAN, SCRIPT FLUSH) need <see cref="ExecuteOnEachMasterAsync"/>.</remarks>
    public Task<RespValue> ExecuteAsync(string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default) =>
        ExecuteAsync(command, args, TimeSpan.Zero, cancellationToken);

    /// <summary>Like <see cref="ExecuteAsync(string, IReadOnlyList{RedisArg}, CancellationToken)"/> for a command that
    /// blocks on the server for up to <paramref name="blockFor"/> (added to the command timeout). Dedicated clients only.</summary>
    public Task<RespValue> ExecuteBlockingAsync(string command, IReadOnlyList<RedisArg> args, TimeSpan blockFor, CancellationToken cancellationToken = default)
    {
        if (!IsDedicated)
        {
            throw new InvalidOperationException(
                "A blocking command would stall every command on the shared Redis connection; run it on a client from RedisClusterClient.CreateDedicatedAsync.");
        }
        return ExecuteAsync(command, args, blockFor, cancellationToken);
    }

    internal Task<RespValue> ExecuteAsync(string command, IReadOnlyList<RedisArg> args, TimeSpan extraTimeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        ArgumentNullException.ThrowIfNull(args);
        int slot;
        try
        {
            slot = RedisCommandKeys.SlotOf(command, args);
        }
        catch (RedisServerException e)
        {
            return Task.FromException<RespValue>(e);
        }
        return SendAsync(slot, command, [], args, null, extraTimeout, cancellationToken);
    }

    /// <inheritdoc />
    /// <remarks>Routed by the slot of <paramref name="keys"/> (which must share one); EVALSHA with EVAL on NOSCRIPT,
    /// on whichever node ends up running it.</remarks>
    public async Task<RespValue> EvalAsync(LuaScript script, IReadOnlyList<RedisArg> keys, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(script);
        var slot = RedisCommandKeys.SlotOfKeys(keys);
        try
        {
            return await SendAsync(slot, "EVALSHA", [script.Sha1, keys.Count], keys, args, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.HasPrefix("NOSCRIPT"))
        {
            // EVAL runs and caches it on that node; each node loads it once.
            return await SendAsync(slot, "EVAL", [script.Source, keys.Count], keys, args, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Runs a node-wide command (FLUSHALL, DBSIZE, SCAN, SCRIPT FLUSH, ...) on every master of the current
    /// slot map, concurrently; returns one reply per master, in <see cref="MasterEndPoints"/> order.</summary>
    /// <exception cref="RedisConnectionException">The map is not known yet, or a master cannot be reached.</exception>
    public async Task<IReadOnlyList<RespValue>> ExecuteOnEachMasterAsync(string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default)
    {
        var map = RequireMap();
        var replies = new Task<RespValue>[map.Masters.Count];
        for (var i = 0; i < replies.Length; i++) replies[i] = SendToNodeAsync(map.Masters[i], command, args, cancellationToken);
        return await Task.WhenAll(replies).ConfigureAwait(false);
    }

    private async Task<RespValue> SendToNodeAsync(NodeAddress address, string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken)
    {
        var node = await _topology.ReadyNodeAsync(address, cancellationToken).ConfigureAwait(false);
        try
        {
            return await node.Send(command, [], args, null, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
        }
        catch (RedisConnectionException)
        {
            NodeFailed(address);
            throw;
        }
    }

    // Routes one command (command head first second) by slot (-1: any master), following redirections.
    private async Task<RespValue> SendAsync(
        int slot, string command, RedisArg[] head, IReadOnlyList<RedisArg>? first, IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout, CancellationToken cancellationToken)
    {
        var map = RequireMap();
        var target = slot < 0 ? _topology.AnyNode() : map.OwnerOf(slot);
        if (target is null)
        {
            _topology.RequestRefresh();
            throw new RedisServerException("CLUSTERDOWN Hash slot not served");
        }
        var asking = false;
        RedisServerException? last = null;
        for (var attempt = 0; attempt <= MaxRedirections; attempt++)
        {
            var node = await _topology.ReadyNodeAsync(target, cancellationToken).ConfigureAwait(false);
            try
            {
                return await (asking
                    ? node.SendAsking(command, head, first, second, extraTimeout, cancellationToken)
                    : node.Send(command, head, first, second, extraTimeout, cancellationToken)).ConfigureAwait(false);
            }
            catch (RedisConnectionException)
            {
                NodeFailed(target);
                throw;
            }
            catch (RedisServerException e) when (Redirection.TryParse(e, target.Host, out var redirection))
            {
                last = e;
                switch (redirection.Kind)
                {
                    case RedirectionKind.Moved:
                        map.Update(redirection.Slot, redirection.Target!);
                        _topology.RequestRefresh();
                        target = redirection.Target!;
                        asking = false;
                        break;
                    case RedirectionKind.Ask:
                        // Only this command goes there; the slot still belongs to the migrating node.
                        target = redirection.Target!;
                        asking = true;
                        break;
                    default:
                        // TRYAGAIN: a multi-key command during a slot migration; the keys will soon be in one place.
                        await Task.Delay(TimeSpan.FromMilliseconds(20 << attempt), cancellationToken).ConfigureAwait(false);
                        break;
                }
            }
        }
        throw new RedisConnectionException(
            $"Redis Cluster redirected a command {MaxRedirections + 1} times (last: {last!.Prefix}); the cluster is resharding or its slot map is inconsistent. Try again.",
            last);
    }

    private ClusterSlotMap RequireMap()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (_topology.Map is { } map) return map;
        _topology.RequestRefresh();
        throw new RedisConnectionException($"The Redis Cluster slot map is not known yet (seed {Options.EndPoint}); the client is still connecting.");
    }

    private void NodeFailed(NodeAddress address)
    {
        Log.NodeUnreachable(_logger, address.EndPoint);
        _topology.RequestRefresh();
    }

    /// <inheritdoc />
    /// <remarks>Handlers run on the subscriber's receive loop: keep them short. The subscriber connection is on one
    /// master; if it breaks, the next connection goes to the next master of the map, re-subscribes every channel
    /// and then raises <see cref="Reconnected"/>.</remarks>
    public Task<IAsyncDisposable> SubscribeAsync(string channel, Action<string, string> onMessage, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        RespClient subscriber;
        lock (_subscriberLock)
        {
            if (_subscriber is null)
            {
                _subscriber = RespClient.ForSubscriptions(Options with { Cluster = false }, _logger, ChooseSubscriberNode);
                _subscriber.Reconnected += RaiseReconnected;
            }
            subscriber = _subscriber;
        }
        return subscriber.SubscribeAsync(channel, onMessage, cancellationToken);
    }

    /// <summary>The node the subscriber connection is on (null before the first subscription), for diagnostics.</summary>
    public string? SubscriberEndPoint { get; private set; }

    // Every (re)connect of the subscriber takes the next master: a node that went away is left behind.
    private RespClientOptions ChooseSubscriberNode()
    {
        var masters = _topology.Map?.Masters;
        if (masters is null || masters.Count == 0) return Options with { Cluster = false };
        var next = Interlocked.Increment(ref _nextSubscriberNode);
        var address = masters[(int)((uint)next % (uint)masters.Count)];
        SubscriberEndPoint = address.EndPoint;
        if (next > 0) _topology.RequestRefresh(); // a reconnect usually means that node failed
        return _topology.OptionsFor(address);
    }

    // The subscriber client calls this once per reconnect; each handler is isolated like there.
    private void RaiseReconnected()
    {
        var handlers = Reconnected;
        if (handlers is null) return;
        foreach (var handler in handlers.GetInvocationList())
        {
            try
            {
                ((Action)handler)();
            }
            catch (Exception e)
            {
                Log.ReconnectedHandlerFailed(_logger, e);
            }
        }
    }

    /// <summary>Closes every node connection and the subscriber; pending commands fail.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        RespClient? subscriber;
        lock (_subscriberLock)
        {
            subscriber = _subscriber;
            _subscriber = null;
        }
        if (subscriber is not null) await subscriber.DisposeAsync().ConfigureAwait(false);
        await _topology.DisposeAsync().ConfigureAwait(false);
    }
}
