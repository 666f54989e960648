using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Redis;

/// <summary>
/// Pipelined, multiplexed RESP2 client: every caller shares ONE command connection; commands are
/// written in call order and replies matched first-in first-out. Pub/sub uses a second, dedicated
/// connection created on the first <see cref="SubscribeAsync"/>.
/// </summary>
/// <remarks>
/// <para>Failure behaviour: when the connection breaks, every pending command fails with
/// <see cref="RedisConnectionException"/> and the client reconnects in the background (exponential
/// backoff with jitter, <see cref="RespClientOptions.ReconnectMinDelay"/> doubling to
/// <see cref="RespClientOptions.ReconnectMaxDelay"/>). While disconnected, commands fail immediately
/// with <see cref="RedisConnectionException"/>; they are never queued behind an outage.</para>
/// <para>Blocking commands (BLPOP, XREADGROUP ... BLOCK, WAIT) and MULTI/EXEC or WATCH must not run on
/// the shared connection: a blocking command stalls every other caller behind it and transactions
/// would interleave with them. Use a client from <see cref="CreateDedicatedAsync"/> for those;
/// <see cref="RedisStreams.StreamReadGroupAsync"/> refuses to block on a shared client.
/// SUBSCRIBE must go through <see cref="SubscribeAsync"/>.</para>
/// </remarks>
public sealed class RespClient : IRedisClient
{
    private readonly ILogger _logger;
    private readonly ConnectionSupervisor _commands;
    private readonly SemaphoreSlim _subscriptionGate = new(1, 1);
    private readonly Lock _handlersLock = new();
    private readonly Dictionary<string, Subscription[]> _handlers = new(StringComparer.Ordinal);
    private readonly Func<RespClientOptions>? _chooseSubscriberNode;
    private ConnectionSupervisor? _subscriber; // created under _subscriptionGate
    private int _disposed;

    /// <summary>Creates the client and starts connecting in the background; commands fail fast with
    /// <see cref="RedisConnectionException"/> until the connection is up (see <see cref="IsConnected"/>).
    /// Use <see cref="ConnectAsync(RespClientOptions, ILogger?, CancellationToken)"/> to wait for it.</summary>
    public RespClient(RespClientOptions options, ILogger? logger = null)
        : this(options, logger, dedicated: false)
    {
    }

    private RespClient(RespClientOptions options, ILogger? logger, bool dedicated, Func<RespClientOptions>? chooseSubscriberNode = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        IsDedicated = dedicated;
        _logger = logger ?? NullLogger.Instance;
        _chooseSubscriberNode = chooseSubscriberNode;
        _commands = new ConnectionSupervisor(options, _logger, dedicated ? "dedicated" : "command", subscriber: false, onPush: null, onConnected: null);
        // A subscriptions-only client never connects its command connection: commands on it fail fast.
        if (chooseSubscriberNode is null) _commands.Start();
    }

    /// <summary>A client for one Redis Cluster node, connecting in the background (dedicated: blocking commands allowed).</summary>
    internal static RespClient ForNode(RespClientOptions options, ILogger? logger, bool dedicated) => new(options, logger, dedicated);

    /// <summary>A client for <see cref="SubscribeAsync"/> only, whose subscriber connection asks
    /// <paramref name="chooseNode"/> which server to use on every (re)connect (Redis Cluster: any node serves
    /// every channel, so a subscriber whose node went away moves to another and raises <see cref="Reconnected"/>).</summary>
    internal static RespClient ForSubscriptions(RespClientOptions options, ILogger? logger, Func<RespClientOptions> chooseNode) =>
        new(options, logger, dedicated: false, chooseNode);

    /// <summary>Completes after the first connect attempt of the command connection (successful or not).</summary>
    internal Task FirstAttempt => _commands.FirstAttempt;

    public RespClientOptions Options { get; }

    /// <summary>True for clients from <see cref="CreateDedicatedAsync"/>: their connection is theirs alone,
    /// so blocking commands are allowed on it.</summary>
    public bool IsDedicated { get; }

    /// <inheritdoc />
    public bool IsConnected => _commands.Current is not null;

    /// <inheritdoc />
    public event Action? Reconnected;

    /// <summary>Creates a client and waits for its first connection (including AUTH/SELECT).</summary>
    /// <exception cref="RedisConnectionException">The first attempt failed; the client is disposed.</exception>
    public static Task<RespClient> ConnectAsync(RespClientOptions options, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(options, logger, dedicated: false, cancellationToken);

    /// <summary>Parses <paramref name="connectionString"/> (see <see cref="RespClientOptions.Parse"/>) and connects.</summary>
    public static Task<RespClient> ConnectAsync(string connectionString, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(RespClientOptions.Parse(connectionString), logger, dedicated: false, cancellationToken);

    /// <summary>
    /// Opens a separate client with its own connection (same options and logger) for blocking commands
    /// such as <c>XREADGROUP ... BLOCK</c> or BLPOP, which would otherwise stall every command on the
    /// shared connection. The caller owns and disposes it. It reconnects like any other client.
    /// </summary>
    public Task<RespClient> CreateDedicatedAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return ConnectAsync(Options, _logger, dedicated: true, cancellationToken);
    }

    private static async Task<RespClient> ConnectAsync(RespClientOptions options, ILogger? logger, bool dedicated, CancellationToken cancellationToken)
    {
        var client = new RespClient(options, logger, dedicated);
        try
        {
            await client._commands.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <inheritdoc />
    public Task<RespValue> ExecuteAsync(string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default) =>
        Send(command, default, args, null, TimeSpan.Zero, cancellationToken);

    /// <summary>Like <see cref="ExecuteAsync(string, IReadOnlyList{RedisArg}, CancellationToken)"/> for a command
    /// that blocks on the server for up to <paramref name="blockFor"/>; that time is added to the command
    /// timeout. Only allowed on a dedicated client.</summary>
    public Task<RespValue> ExecuteBlockingAsync(string command, IReadOnlyList<RedisArg> args, TimeSpan blockFor, CancellationToken cancellationToken = default)
    {
        if (!IsDedicated)
        {
            throw new InvalidOperationException(
                "A blocking command would stall every command on the shared Redis connection; run it on a client from RespClient.CreateDedicatedAsync.");
        }
        return Send(command, default, args, null, blockFor, cancellationToken);
    }

    /// <inheritdoc />
    public async Task<RespValue> EvalAsync(LuaScript script, IReadOnlyList<RedisArg> keys, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(script);
        try
        {
            return await SendScript("EVALSHA", script.Sha1, keys, args, cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException e) when (e.HasPrefix("NOSCRIPT"))
        {
            // EVAL both runs and caches the script, so later calls take the EVALSHA path again
            // (after a Redis restart or SCRIPT FLUSH this happens once more, transparently).
            return await SendScript("EVAL", script.Source, keys, args, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>Handlers run on the subscriber's receive loop: keep them short and non-blocking.
    /// An exception from a handler is logged and does not affect other handlers.
    /// Throws <see cref="RedisConnectionException"/> when the subscriber connection is down; the
    /// subscription is then not registered.</remarks>
    public async Task<IAsyncDisposable> SubscribeAsync(string channel, Action<string, string> onMessage, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(channel);
        ArgumentNullException.ThrowIfNull(onMessage);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        var subscription = new Subscription(this, channel, onMessage);
        ConnectionSupervisor subscriber;
        await _subscriptionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (_subscriber is null)
            {
                _subscriber = new ConnectionSupervisor(Options, _logger, "subscriber", subscriber: true, OnPush, OnSubscriberConnectedAsync, _chooseSubscriberNode);
                _subscriber.Start();
            }
            subscriber = _subscriber;
        }
        finally
        {
            _subscriptionGate.Release();
        }
        try
        {
            // Not under the gate: the connection's set-up callback (re-subscribing) takes the gate
            // before the first attempt completes, so waiting for it while holding the gate deadlocks.
            await subscriber.FirstAttempt.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisConnectionException)
        {
        }
        await _subscriptionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            var connection = subscriber.Current
                ?? throw new RedisConnectionException($"The Redis subscriber connection to {Options.EndPoint} is down; it is being re-established.");

            bool first;
            lock (_handlersLock)
            {
                first = !_handlers.TryGetValue(channel, out var existing);
                _handlers[channel] = first ? [subscription] : [.. existing!, subscription];
            }
            if (first)
            {
                try
                {
                    await connection.SendAsync("SUBSCRIBE", [channel], null, null, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    RemoveHandler(subscription);
                    throw;
                }
            }
            return subscription;
        }
        finally
        {
            _subscriptionGate.Release();
        }
    }

    /// <summary>Fails pending commands, closes both connections and stops reconnecting.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _commands.StopAsync().ConfigureAwait(false);
        // Taking the gate waits out a SubscribeAsync in progress, so it cannot start a subscriber after this.
        await _subscriptionGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_subscriber is not null) await _subscriber.StopAsync().ConfigureAwait(false);
        }
        finally
        {
            _subscriptionGate.Release();
        }
    }

    internal Task<RespValue> Send(
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout,
        CancellationToken cancellationToken)
    {
        var connection = _commands.Current;
        if (connection is null) return Task.FromException<RespValue>(NotConnected());
        return connection.SendAsync(command, head, first, second, extraTimeout, cancellationToken);
    }

    /// <summary>Sends <c>ASKING</c> and the command back to back on the command connection (Redis Cluster ASK redirection).</summary>
    internal Task<RespValue> SendAsking(
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second,
        TimeSpan extraTimeout,
        CancellationToken cancellationToken)
    {
        var connection = _commands.Current;
        if (connection is null) return Task.FromException<RespValue>(NotConnected());
        return connection.SendAskingAsync(command, head, first, second, extraTimeout, cancellationToken);
    }

    // Not async: the head span cannot live across an await.
    private Task<RespValue> SendScript(string command, string shaOrSource, IReadOnlyList<RedisArg> keys, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken) =>
        Send(command, [shaOrSource, keys.Count], keys, args, TimeSpan.Zero, cancellationToken);

    private RedisConnectionException NotConnected() => Volatile.Read(ref _disposed) != 0
        ? new RedisConnectionException("The Redis client was disposed.")
        : new RedisConnectionException($"Redis at {Options.EndPoint} is not connected; the client is reconnecting.");

    private void OnPush(RespValue message)
    {
        var items = message.Items;
        // "message" channel payload, or "pmessage" pattern channel payload.
        var channelIndex = items.Count - 2;
        var channel = items[channelIndex].AsString() ?? "";
        Subscription[]? subscriptions;
        lock (_handlersLock)
        {
            _handlers.TryGetValue(channel, out subscriptions);
        }
        if (subscriptions is null) return;
        var payload = items[channelIndex + 1].AsString() ?? "";
        foreach (var subscription in subscriptions)
        {
            try
            {
                subscription.Handler(channel, payload);
            }
            catch (Exception e)
            {
                Log.HandlerFailed(_logger, channel, e);
            }
        }
    }

    private async Task OnSubscriberConnectedAsync(RespConnection connection, bool isReconnect, CancellationToken cancellationToken)
    {
        // Channels are registered only on an established subscriber connection, so a first connection
        // has nothing to restore (and nobody to tell that it "re"-connected).
        if (!isReconnect) return;
        int count;
        await _subscriptionGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            string[] channels;
            lock (_handlersLock)
            {
                channels = [.. _handlers.Keys];
            }
            // One SUBSCRIBE per channel keeps replies one for one with commands.
            var replies = new Task[channels.Length];
            for (var i = 0; i < channels.Length; i++)
            {
                replies[i] = connection.SendAsync("SUBSCRIBE", [channels[i]], null, null, TimeSpan.Zero, cancellationToken);
            }
            await Task.WhenAll(replies).ConfigureAwait(false);
            count = channels.Length;
        }
        finally
        {
            _subscriptionGate.Release();
        }
        Log.Resubscribed(_logger, count);
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

    // Returns true when it removed the channel's last handler.
    private bool RemoveHandler(Subscription subscription)
    {
        lock (_handlersLock)
        {
            if (!_handlers.TryGetValue(subscription.Channel, out var existing)) return false;
            var index = Array.IndexOf(existing, subscription);
            if (index < 0) return false;
            if (existing.Length == 1)
            {
                _handlers.Remove(subscription.Channel);
                return true;
            }
            _handlers[subscription.Channel] = [.. existing[..index], .. existing[(index + 1)..]];
            return false;
        }
    }

    private async ValueTask UnsubscribeAsync(Subscription subscription)
    {
        await _subscriptionGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!RemoveHandler(subscription) || Volatile.Read(ref _disposed) != 0) return;
            var connection = _subscriber?.Current;
            if (connection is null) return; // the next connection only subscribes channels still registered
            try
            {
                await connection.SendAsync("UNSUBSCRIBE", [subscription.Channel], null, null, TimeSpan.Zero, default).ConfigureAwait(false);
            }
            catch (RedisConnectionException)
            {
                // The connection broke: its subscriptions are gone with it and will not be restored.
            }
        }
        finally
        {
            _subscriptionGate.Release();
        }
    }

    private sealed class Subscription(RespClient client, string channel, Action<string, string> handler) : IAsyncDisposable
    {
        private int _disposed;

        public string Channel { get; } = channel;
        public Action<string, string> Handler { get; } = handler;

        public ValueTask DisposeAsync() =>
            Interlocked.Exchange(ref _disposed, 1) == 0 ? client.UnsubscribeAsync(this) : ValueTask.CompletedTask;
    }
}
