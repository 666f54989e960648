using Microsoft.Extensions.Logging;

namespace Gateway.Core.Redis.Cluster;

/// <summary>
/// The slot map of a Redis Cluster and one <see cref="RespClient"/> per node (created on first use, same
/// options and credentials as the seed). Refreshes the map with <c>CLUSTER SLOTS</c> from any node that answers;
/// refreshes are single flight, and while no map is known one keeps retrying with backoff.
/// </summary>
internal sealed class ClusterTopology : IAsyncDisposable
{
    private readonly RespClientOptions _seed;
    private readonly NodeAddress _seedAddress;
    private readonly ILogger _logger;
    private readonly bool _dedicated;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, RespClient> _nodes = new(StringComparer.Ordinal); // under _lock
    private readonly CancellationTokenSource _stop = new();
    private ClusterSlotMap? _map;
    private Task? _refresh; // under _lock: the refresh in flight
    private int _nextNode;
    private bool _disposed; // under _lock

    public ClusterTopology(RespClientOptions seed, ILogger logger, bool dedicated)
    {
        _seed = seed with { Cluster = false };
        _seedAddress = new NodeAddress(seed.Host, seed.Port);
        _logger = logger;
        _dedicated = dedicated;
    }

    /// <summary>The current slot map, or null until the first refresh succeeded.</summary>
    public ClusterSlotMap? Map => Volatile.Read(ref _map);

    /// <summary>True when the map is known and some node's command connection is up.</summary>
    public bool IsConnected
    {
        get
        {
            if (Map is null) return false;
            lock (_lock)
            {
                foreach (var node in _nodes.Values)
                {
                    if (node.IsConnected) return true;
                }
            }
            return false;
        }
    }

    /// <summary>The options of a node's client: the seed's settings and credentials at that node's address.</summary>
    public RespClientOptions OptionsFor(NodeAddress address) => _seed with { Host = address.Host, Port = address.Port };

    /// <summary>The client of <paramref name="address"/>, created (connecting in the background) on first use.</summary>
    public RespClient Node(NodeAddress address)
    {
        lock (_lock)
        {
            if (_nodes.TryGetValue(address.EndPoint, out var node)) return node;
            ObjectDisposedException.ThrowIf(_disposed, this);
            node = RespClient.ForNode(OptionsFor(address), _logger, _dedicated);
            _nodes.Add(address.EndPoint, node);
            return node;
        }
    }

    /// <summary>The client of <paramref name="address"/> once its first connect attempt is over: a node met for the
    /// first time is awaited, a node known to be down fails the command fast (its client reconnects meanwhile).</summary>
    public async ValueTask<RespClient> ReadyNodeAsync(NodeAddress address, CancellationToken cancellationToken)
    {
        var node = Node(address);
        var first = node.FirstAttempt;
        if (!first.IsCompleted)
        {
            try
            {
                await first.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (RedisConnectionException)
            {
                // Sending reports it, with the node's address.
            }
        }
        return node;
    }

    /// <summary>A master for keyless commands: one whose connection is up if any (round robin), else the first.</summary>
    public NodeAddress AnyNode()
    {
        var masters = Map?.Masters;
        if (masters is null || masters.Count == 0) return _seedAddress;
        var start = (int)((uint)Interlocked.Increment(ref _nextNode) % (uint)masters.Count);
        for (var i = 0; i < masters.Count; i++)
        {
            var candidate = masters[(start + i) % masters.Count];
            lock (_lock)
            {
                if (_nodes.TryGetValue(candidate.EndPoint, out var node) && node.IsConnected) return candidate;
            }
        }
        return masters[start];
    }

    /// <summary>Loads the slot map from the first node that answers <c>CLUSTER SLOTS</c> (known masters, then the seed).</summary>
    /// <exception cref="RedisConnectionException">No node answered, or the seed is not a cluster node.</exception>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var candidates = new List<NodeAddress>();
        if (Map is { } current) candidates.AddRange(current.Masters);
        if (!candidates.Contains(_seedAddress)) candidates.Add(_seedAddress);
        Exception? last = null;
        foreach (var candidate in candidates)
        {
            try
            {
                var node = await ReadyNodeAsync(candidate, cancellationToken).ConfigureAwait(false);
                var reply = await node.ExecuteAsync("CLUSTER", ["SLOTS"], cancellationToken).ConfigureAwait(false);
                var map = ClusterSlotMap.Parse(reply, candidate.Host);
                Volatile.Write(ref _map, map);
                Log.TopologyLoaded(_logger, map.Masters.Count, candidate.EndPoint);
                await DropNodesOutsideAsync(map).ConfigureAwait(false);
                return;
            }
            catch (RedisServerException e)
            {
                // "ERR This instance has cluster support disabled": the seed is a stand-alone Redis.
                last = new RedisConnectionException($"Redis at {candidate.EndPoint} cannot serve as a cluster node (cluster=true): {e.Message}", e);
            }
            catch (RedisConnectionException e)
            {
                last = e;
            }
        }
        throw new RedisConnectionException(
            $"No Redis Cluster node answered CLUSTER SLOTS ({candidates.Count} tried); last error: {last?.Message}", last);
    }

    /// <summary>Starts a background refresh unless one is in flight. While no map is known it retries with
    /// backoff until it succeeds or the client is disposed.</summary>
    public void RequestRefresh()
    {
        lock (_lock)
        {
            if (_disposed || _refresh is { IsCompleted: false }) return;
            _refresh = Task.Run(RefreshInBackgroundAsync);
        }
    }

    private async Task RefreshInBackgroundAsync()
    {
        var delay = _seed.ReconnectMinDelay;
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await RefreshAsync(_stop.Token).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.TopologyRefreshFailed(_logger, e.Message);
                if (Map is not null) return; // the next redirection or failure asks again
            }
            try
            {
                await Task.Delay(delay, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _seed.ReconnectMaxDelay.Ticks));
        }
    }

    // A node that no longer serves slots (removed, or a failed master replaced by its replica) would otherwise
    // keep reconnecting for the client's lifetime. The seed stays: it is where refreshes start.
    private async Task DropNodesOutsideAsync(ClusterSlotMap map)
    {
        List<RespClient>? stale = null;
        lock (_lock)
        {
            foreach (var (endPoint, node) in _nodes)
            {
                if (endPoint == _seedAddress.EndPoint) continue;
                var serving = false;
                foreach (var master in map.Masters) serving |= master.EndPoint == endPoint;
                if (serving) continue;
                (stale ??= []).Add(node);
            }
            if (stale is null) return;
            foreach (var node in stale) _nodes.Remove(node.Options.EndPoint);
        }
        foreach (var node in stale) await node.DisposeAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        RespClient[] nodes;
        Task? refresh;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            nodes = [.. _nodes.Values];
            _nodes.Clear();
            refresh = _refresh;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var node in nodes) await node.DisposeAsync().ConfigureAwait(false);
        if (refresh is not null)
        {
            try
            {
                await refresh.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Already logged; the client is going away.
            }
        }
        _stop.Dispose();
    }
}
