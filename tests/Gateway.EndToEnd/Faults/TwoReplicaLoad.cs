using System.Collections.Concurrent;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Steady traffic through two proxy replicas on one Redis (issue #12's "two proxy replicas"): the stack's own proxy
/// and one started as a process, two clients on each, streamed and not in turn. Outcomes are kept per replica, so a
/// fault test can assert what each replica did and what they did together.
/// </summary>
internal sealed class TwoReplicaLoad : IAsyncDisposable
{
    private readonly ProxyProcess _replica;
    private readonly HttpClient[] _clients;
    private readonly CancellationTokenSource _stop = new();
    private Task[] _workers = [];

    private TwoReplicaLoad(ProxyProcess replica, HttpClient[] clients)
    {
        _replica = replica;
        _clients = clients;
        All = new AllOf(ByReplica);
    }

    /// <summary>Each replica's outcomes (0: the stack's proxy, 1: the process), growing while the load runs.</summary>
    public ConcurrentQueue<FaultTraffic.Outcome>[] ByReplica { get; } = [new(), new()];

    /// <summary>Both replicas' outcomes, read afresh at each enumeration.</summary>
    public IEnumerable<FaultTraffic.Outcome> All { get; }

    /// <summary>Starts the second replica, waits until <paramref name="key"/> is served by both, then starts the load.</summary>
    public static async Task<TwoReplicaLoad> StartAsync(GatewayStack stack, string key)
    {
        var replica = await ProxyProcess.StartAsync(stack);
        HttpClient[] clients =
        [
            new HttpClient { BaseAddress = stack.ProxyUrl, Timeout = TimeSpan.FromSeconds(60) },
            new HttpClient { BaseAddress = replica.Url, Timeout = TimeSpan.FromSeconds(60) },
        ];
        var load = new TwoReplicaLoad(replica, clients);
        try
        {
            foreach (var http in clients)
                await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(http, key, stream: false)).Status == 200, "the key to work on each replica");
        }
        catch
        {
            await load.DisposeAsync();
            throw;
        }
        load._workers = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!load._stop.IsCancellationRequested)
                load.ByReplica[worker % 2].Enqueue(await FaultTraffic.SendAsync(clients[worker % 2], key, stream: (i++ + worker / 2) % 2 == 0));
        })).ToArray();
        return load;
    }

    /// <summary>Stops sending and waits for the requests in flight to be answered.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        foreach (var c in _clients) c.Dispose();
        _replica.Dispose();
        _stop.Dispose();
    }

    private sealed class AllOf(ConcurrentQueue<FaultTraffic.Outcome>[] parts) : IEnumerable<FaultTraffic.Outcome>
    {
        public IEnumerator<FaultTraffic.Outcome> GetEnumerator() => parts.SelectMany(p => p).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
