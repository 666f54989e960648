using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Gateway.Core.Redis;

namespace Gateway.Testing;

/// <summary>
/// A private three-master Redis Cluster: three redis-server child processes on free loopback ports (each in its own
/// temp dir, no persistence), slots 0-5460, 5461-10922 and 10923-16383, joined with CLUSTER MEET. Only the processes
/// started here are ever killed. Helpers move slots between nodes (for MOVED and ASK) and kill a node.
/// </summary>
public sealed class ThrowawayRedisCluster : IAsyncDisposable
{
    private static readonly (int First, int Last)[] Ranges = [(0, 5460), (5461, 10922), (10923, 16383)];

    private readonly List<Node> _nodes = [];

    private ThrowawayRedisCluster()
    {
    }

    /// <summary>"127.0.0.1:port,cluster=true" of the first node (the seed).</summary>
    public string ConnectionString => Addresses[0] + ",cluster=true";

    /// <summary>"127.0.0.1:port" of each node, in slot-range order (node 0 starts with slots 0-5460).</summary>
    public IReadOnlyList<string> Addresses => [.. _nodes.Select(n => n.Address)];

    /// <summary>The cluster node id of each node.</summary>
    public IReadOnlyList<string> NodeIds => [.. _nodes.Select(n => n.Id)];

    /// <summary>Starts three nodes, joins them and waits until every node reports <c>cluster_state:ok</c> with the same slot map.</summary>
    public static async Task<ThrowawayRedisCluster> StartAsync()
    {
        var cluster = new ThrowawayRedisCluster();
        try
        {
            for (var i = 0; i < Ranges.Length; i++) cluster._nodes.Add(await Node.StartAsync());
            for (var i = 0; i < cluster._nodes.Count; i++)
            {
                var node = cluster._nodes[i];
                // Distinct epochs up front, as redis-cli --cluster create does, so no epoch collision must be resolved.
                await node.Client.ExecuteAsync("CLUSTER", ["SET-CONFIG-EPOCH", i + 1]);
                await node.Client.ExecuteAsync("CLUSTER", ["ADDSLOTSRANGE", Ranges[i].First, Ranges[i].Last]);
                node.Id = (await node.Client.ExecuteAsync("CLUSTER", ["MYID"])).AsString()!;
            }
            for (var i = 1; i < cluster._nodes.Count; i++)
            {
                var other = cluster._nodes[i];
                await cluster._nodes[0].Client.ExecuteAsync("CLUSTER", ["MEET", "127.0.0.1", other.Port, other.BusPort]);
            }
            await Eventually.TrueAsync(cluster.IsSettledAsync, "the three-node Redis Cluster to agree on its slot map with cluster_state:ok");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>A plain (non-cluster) client connected to node <paramref name="index"/>, for admin commands in tests.</summary>
    public RespClient Client(int index) => _nodes[index].Client;

    /// <summary>The index of the node serving <paramref name="slot"/>, as node <paramref name="askNode"/> (default: the
    /// first one running) sees it.</summary>
    public async Task<int> OwnerOfSlotAsync(int slot, int? askNode = null)
    {
        var reply = await _nodes[askNode ?? FirstRunning()].Client.ExecuteAsync("CLUSTER", ["SLOTS"]);
        foreach (var range in reply.Items)
        {
            if (range.Items[0].AsInt64() <= slot && slot <= range.Items[1].AsInt64())
                return IndexOfPort((int)range.Items[2].Items[1].AsInt64());
        }
        throw new InvalidOperationException($"No node serves slot {slot}.");
    }

    /// <summary>Starts moving <paramref name="slot"/> from its owner to node <paramref name="to"/>: IMPORTING on the target,
    /// MIGRATING on the source. Keys not yet migrated stay readable on the source; migrated ones answer ASK there.</summary>
    public async Task BeginSlotMigrationAsync(int slot, int to)
    {
        var from = await OwnerOfSlotAsync(slot);
        if (from == to) throw new ArgumentException($"Slot {slot} is already on node {to}.", nameof(to));
        await _nodes[to].Client.ExecuteAsync("CLUSTER", ["SETSLOT", slot, "IMPORTING", _nodes[from].Id]);
        await _nodes[from].Client.ExecuteAsync("CLUSTER", ["SETSLOT", slot, "MIGRATING", _nodes[to].Id]);
    }

    /// <summary>Moves <paramref name="key"/> (of a slot being migrated) from node <paramref name="from"/> to node <paramref name="to"/> with MIGRATE.</summary>
    public async Task MigrateKeyAsync(string key, int from, int to)
    {
        var reply = await _nodes[from].Client.ExecuteAsync("MIGRATE", ["127.0.0.1", _nodes[to].Port, key, 0, 5000]);
        if (reply.AsString() != "OK") throw new InvalidOperationException($"MIGRATE answered {reply}.");
    }

    /// <summary>Finishes a migration: every key still on the source is MIGRATEd, then the slot is assigned to node
    /// <paramref name="to"/> on every node (target first, as Redis' own tooling does).</summary>
    public async Task FinishSlotMigrationAsync(int slot, int from, int to)
    {
        while (true)
        {
            var keys = (await _nodes[from].Client.ExecuteAsync("CLUSTER", ["GETKEYSINSLOT", slot, 100])).Items;
            if (keys.Count == 0) break;
            foreach (var key in keys) await MigrateKeyAsync(key.AsString()!, from, to);
        }
        await _nodes[to].Client.ExecuteAsync("CLUSTER", ["SETSLOT", slot, "NODE", _nodes[to].Id]);
        await _nodes[from].Client.ExecuteAsync("CLUSTER", ["SETSLOT", slot, "NODE", _nodes[to].Id]);
        for (var i = 0; i < _nodes.Count; i++)
        {
            if (i != from && i != to && _nodes[i].IsRunning)
                await _nodes[i].Client.ExecuteAsync("CLUSTER", ["SETSLOT", slot, "NODE", _nodes[to].Id]);
        }
    }

    /// <summary>Moves <paramref name="slot"/> and its keys to node <paramref name="to"/> (a completed resharding step).</summary>
    public async Task MoveSlotAsync(int slot, int to)
    {
        var from = await OwnerOfSlotAsync(slot);
        await BeginSlotMigrationAsync(slot, to);
        await FinishSlotMigrationAsync(slot, from, to);
    }

    /// <summary>A key starting with <paramref name="prefix"/> whose slot node <paramref name="node"/> serves, found by
    /// asking the cluster (CLUSTER KEYSLOT, CLUSTER SLOTS), not by the client's own hashing. With
    /// <paramref name="hashTag"/> the key is a whole hash tag (<c>{prefix…}</c>): append to it for more keys of its slot.</summary>
    public async Task<(string Key, int Slot)> KeyOnNodeAsync(string prefix, int node, bool hashTag = false)
    {
        if (prefix.Contains('{', StringComparison.Ordinal)) throw new ArgumentException("The prefix must not contain a hash tag.", nameof(prefix));
        for (var i = 0; i < 10_000; i++)
        {
            var n = i.ToString(CultureInfo.InvariantCulture);
            var key = hashTag ? "{" + prefix + n + "}" : prefix + "k" + n;
            var slot = (int)(await _nodes[FirstRunning()].Client.ExecuteAsync("CLUSTER", ["KEYSLOT", key])).AsInt64();
            if (await OwnerOfSlotAsync(slot) == node) return (key, slot);
        }
        throw new InvalidOperationException($"No key of node {node} found; does it serve any slot?");
    }

    /// <summary>Kills node <paramref name="index"/> (SIGKILL, like a crashed pod). Its slots stay unserved: no replicas.</summary>
    public async Task KillAsync(int index) => await _nodes[index].KillAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes) await node.DisposeAsync();
        _nodes.Clear();
    }

    private int FirstRunning() => _nodes.FindIndex(n => n.IsRunning);

    private int IndexOfPort(int port)
    {
        for (var i = 0; i < _nodes.Count; i++)
        {
            if (_nodes[i].Port == port) return i;
        }
        throw new InvalidOperationException($"Port {port} is not a node of this cluster.");
    }

    private async Task<bool> IsSettledAsync()
    {
        string? firstMap = null;
        foreach (var node in _nodes)
        {
            var info = (await node.Client.ExecuteAsync("CLUSTER", ["INFO"])).AsString()!;
            if (!info.Contains("cluster_state:ok", StringComparison.Ordinal)
                || !info.Contains("cluster_known_nodes:" + _nodes.Count.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal))
            {
                return false;
            }
            var slots = (await node.Client.ExecuteAsync("CLUSTER", ["SLOTS"])).Items;
            var map = string.Join(";", slots.Select(r => $"{r.Items[0]}-{r.Items[1]}@{r.Items[2].Items[1]}").Order(StringComparer.Ordinal));
            if (slots.Count != Ranges.Length || (firstMap is not null && map != firstMap)) return false;
            firstMap = map;
        }
        return true;
    }

    private sealed class Node : IAsyncDisposable
    {
        private readonly string _directory;
        private Process? _process;
        private RespClient? _client;

        private Node(int port, int busPort)
        {
            Port = port;
            BusPort = busPort;
            _directory = Path.Combine(Path.GetTempPath(), "tg-redis-cluster-" + port.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(_directory);
        }

        public int Port { get; }
        public int BusPort { get; }
        public string Id { get; set; } = "";
        public string Address => "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);
        public bool IsRunning => _process is { HasExited: false };
        public RespClient Client => _client ?? throw new InvalidOperationException($"Node {Address} was killed.");

        public static async Task<Node> StartAsync()
        {
            var ports = FreeLoopbackPorts(2);
            var node = new Node(ports[0], ports[1]);
            try
            {
                node.Launch();
                // Retries until the server listens: the client's first attempt fails while it starts.
                node._client = await Eventually.ReturnsAsync(async () => await RespClient.ConnectAsync(node.Address + ",connectTimeout=2000"),
                    $"redis-server (cluster node) on port {node.Port} to accept connections");
                return node;
            }
            catch
            {
                await node.DisposeAsync();
                throw;
            }
        }

        private void Launch()
        {
            var info = new ProcessStartInfo("/usr/bin/redis-server")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in (string[])["--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                         "--cluster-enabled", "yes", "--cluster-config-file", Path.Combine(_directory, "nodes.conf"),
                         "--cluster-port", BusPort.ToString(CultureInfo.InvariantCulture), "--cluster-node-timeout", "5000",
                         // A dead node's slots fail; the others keep serving (tests check both).
                         "--cluster-require-full-coverage", "no",
                         "--appendonly", "no", "--save", "", "--daemonize", "no", "--dir", _directory, "--loglevel", "warning"])
            {
                info.ArgumentList.Add(arg);
            }
            var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
            process.OutputDataReceived += static (_, _) => { };
            process.ErrorDataReceived += static (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _process = process;
        }

        public async Task KillAsync()
        {
            if (_client is not null) await _client.DisposeAsync();
            _client = null;
            var process = _process;
            if (process is null) return;
            _process = null;
            if (!process.HasExited)
            {
                process.Kill();
                await process.WaitForExitAsync();
            }
            process.Dispose();
        }

        public async ValueTask DisposeAsync()
        {
            await KillAsync();
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        // Held open together so the two ports differ; the cluster bus port is chosen explicitly because the
        // default (port + 10000) may be taken or out of range.
        private static int[] FreeLoopbackPorts(int count)
        {
            var listeners = new TcpListener[count];
            try
            {
                for (var i = 0; i < count; i++)
                {
                    listeners[i] = new TcpListener(IPAddress.Loopback, 0);
                    listeners[i].Start();
                }
                return [.. listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];
            }
            finally
            {
                foreach (var listener in listeners) listener?.Stop();
            }
        }
    }
}
