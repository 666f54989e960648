using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;
using Xunit.Abstractions;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Chaos runs of quota leases (Hot path v2): two proxy replicas admitting through leases (5 s TTL) under steady traffic,
/// streamed and not, while (1) one of them is SIGKILLed and restarted again and again, and (2) Redis is flushed while
/// both hold leases. Afterwards no lease is left open, every request that completed to its client has exactly one usage
/// row, and the conservation check is clean. Both facts are in one class so they run one after the other (each starts
/// its own stack and two replica processes).
/// </summary>
public sealed class LeaseChaosTests(ITestOutputHelper output)
{
    private static readonly string[] Leased = ["--TokenGate:Leases:Enabled", "true", "--TokenGate:Leases:Ttl", "00:00:05"];

    [Fact]
    public async Task Leased_replica_killed_and_restarted_repeatedly_leaves_no_lease_open_and_every_success_metered_once()
    {
        await using var stack = await GatewayStack.StartAsync();
        var key = await FaultTraffic.LoadKeyAsync(stack);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        using var survivor = await ProxyProcess.StartAsync(stack, Leased);
        ProxyProcess? victim = await ProxyProcess.StartAsync(stack, Leased);
        var kills = 0;
        long victimGrants = 0;
        await using var load = new LeasedLoad(key);
        try
        {
            await load.AttachAsync(0, survivor);
            await load.AttachAsync(1, victim);
            // Two kills in make test; make chaos: twenty.
            for (var round = 0; round < 2 * FaultTraffic.Scale; round++)
            {
                var served = load.Served(1);
                await Eventually.TrueAsync(() => Task.FromResult(load.Served(1) >= served + 100), "leased traffic through the replica before the kill");
                var granted = await MetricAsync(victim, "tokengate_leases_granted_total");
                Assert.True(granted > 0, "the replica about to be killed was granted leases");
                Assert.True((await OpenInRedisAsync(redis, keys)).Leases > 0, "leases are held at the kill");
                victimGrants += granted;

                load.Detach(1);
                victim.Dispose(); // SIGKILL
                victim = null;
                kills++;
                var killedAt = DateTime.UtcNow;
                // The survivor keeps serving while the other replica is gone.
                await Eventually.TrueAsync(() => Task.FromResult(load.Outcomes(0).Count(o => o.SentAt > killedAt && o.Status == 200) >= 10),
                    "traffic through the survivor after the kill");
                victim = await ProxyProcess.StartAsync(stack, Leased);
                await load.AttachAsync(1, victim);
            }
            await load.StopAsync();
            var stoppedAt = DateTime.UtcNow;

            // The survivor answered everything; the killed replica only 200s and the requests its death cut.
            Assert.All(load.Outcomes(0), o => Assert.True(o.Status == 200, $"the survivor answered {o.Status}: {Excerpt(o)}"));
            Assert.All(load.Outcomes(1), o => Assert.True(o.Status is 200 or 0, $"the killed replica answered {o.Status}: {Excerpt(o)}"));

            // Live replicas return their idle leases; the sweeper reclaims the dead ones' (expiry + 5 s grace) and charges
            // their requests in flight (as reservations that expire at once).
            await Eventually.TrueAsync(async () => (await OpenInRedisAsync(redis, keys)) is { Leases: 0, Reservations: 0 },
                "every lease returned or reclaimed and every handed-over reservation charged", TimeSpan.FromSeconds(90));
            var leasesClosedAfter = DateTime.UtcNow - stoppedAt;
            victimGrants += await MetricAsync(victim, "tokengate_leases_granted_total");
            var survivorGrants = await MetricAsync(survivor, "tokengate_leases_granted_total");
            var survivorReturns = await MetricAsync(survivor, "tokengate_leases_returned_total");

            var outcomes = load.All.ToList();
            var rows = await AssertEachSuccessHasOneUsageRowAsync(stack, outcomes);
            var counts = await FaultTraffic.AssertConservedAsync(stack, TestEnvironment.Redis);
            Assert.Equal(0, counts.OpenLeases);
            Assert.Equal(0, counts.OpenReservations);
            var ok = outcomes.Count(o => o.Status == 200);
            FaultTraffic.Report($"leased replica SIGKILLed and restarted {kills} time(s), two replicas", outcomes, rows, unmetered: 0, reservedOnly: 0, null, "clean",
                string.Create(CultureInfo.InvariantCulture,
                    $"kills {kills}; cut {outcomes.Count(o => o.Status == 0)}; 200 via the survivor {load.Served(0)}, via the killed replica {ok - load.Served(0)}; "
                    + $"leases granted: survivor {survivorGrants} (returned {survivorReturns}), the killed replica's incarnations {victimGrants}; "
                    + $"all leases closed {leasesClosedAfter.TotalSeconds:0.0} s after the traffic stopped"),
                output);
        }
        finally
        {
            await load.StopAsync();
            victim?.Dispose();
        }
    }

    [Fact]
    public async Task Redis_flushed_while_leases_are_held_is_rebuilt_leases_are_granted_again_and_every_success_metered_once()
    {
        await using var server = await ThrowawayRedisServer.StartAsync(appendOnly: true);
        await using var stack = await GatewayStack.StartAsync(server.Address);
        var key = await FaultTraffic.LoadKeyAsync(stack);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        await using var redis = await RespClient.ConnectAsync(server.Address);
        using var first = await ProxyProcess.StartAsync(stack, Leased);
        using var second = await ProxyProcess.StartAsync(stack, Leased);
        ProxyProcess[] replicas = [first, second];
        var flushes = 0;
        var notes = new List<string>();
        await using var load = new LeasedLoad(key);
        try
        {
            await load.AttachAsync(0, first);
            await load.AttachAsync(1, second);
            // One flush in make test; make chaos: ten.
            for (var round = 0; round < FaultTraffic.Scale; round++)
            {
                var served = load.Served(0) + load.Served(1);
                await Eventually.TrueAsync(() => Task.FromResult(load.Served(0) + load.Served(1) >= served + 20), "leased traffic before the flush");
                var grantedBefore = await GrantedAsync(replicas);
                var held = (await OpenInRedisAsync(redis, keys)).Leases;
                Assert.True(held > 0, "leases are held just before the flush");

                await redis.ExecuteAsync("FLUSHALL", []);
                flushes++;
                var flushedAt = DateTime.UtcNow;
                // Nothing restarted: the operator rebuilds the projection, the replicas serve again and take new leases.
                await Eventually.TrueAsync(stack.ProjectionBuiltAsync, "the operator to rebuild the projection", TimeSpan.FromSeconds(120));
                var rebuiltAt = DateTime.UtcNow;
                await Eventually.TrueAsync(() => Task.FromResult(load.All.Count(o => o.SentAt > rebuiltAt && o.Status == 200) >= 10),
                    "traffic to resume after the rebuild", TimeSpan.FromSeconds(120));
                await Eventually.TrueAsync(async () => (await OpenInRedisAsync(redis, keys)).Leases > 0 && await GrantedAsync(replicas) > grantedBefore,
                    "leases to be granted again after the rebuild", TimeSpan.FromSeconds(60));
                var leasedAgainAt = DateTime.UtcNow;
                var after = load.All.Where(o => o.SentAt > flushedAt && o.SentAt < rebuiltAt).ToList();
                notes.Add(string.Create(CultureInfo.InvariantCulture,
                    $"flush {flushes}: {held} leases held; rebuilt after {(rebuiltAt - flushedAt).TotalSeconds:0.0} s, leases again after {(leasedAgainAt - flushedAt).TotalSeconds:0.0} s; "
                    + $"sent before the epoch was back: {after.Count(o => o.Status == 200)} × 200 (leases granted once the balance is reseeded, which comes before the epoch), "
                    + $"{after.Count(o => o.Status == 503)} × 503"));
            }
        }
        finally
        {
            await load.StopAsync();
        }

        var outcomes = load.All.ToList();
        foreach (var o in outcomes.Where(o => o.Status != 200))
        {
            Assert.True(o.Status == 503, $"unexpected status {o.Status}: {Excerpt(o)}");
            using var error = JsonDocument.Parse(o.Body);
            Assert.Equal("gateway_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
        var rows = await AssertEachSuccessHasOneUsageRowAsync(stack, outcomes);
        // The ledger writer has caught up (recharges that duplicated a row are refunded) and the replicas returned their
        // idle leases: the money adds up with nothing outstanding.
        await Eventually.TrueAsync(async () => (await OpenInRedisAsync(redis, keys)) is { Leases: 0, Reservations: 0, UsageEvents: 0 },
            "the usage stream to drain and every lease to be returned", TimeSpan.FromSeconds(60));
        var counts = await FaultTraffic.AssertConservedAsync(stack, server.Address);
        Assert.Equal(0, counts.OpenLeases);
        var granted = await GrantedAsync(replicas);
        FaultTraffic.Report($"redis flushed {flushes} time(s) while two leased replicas held leases", outcomes, rows, unmetered: 0, reservedOnly: 0, null, "clean",
            string.Join("; ", notes) + string.Create(CultureInfo.InvariantCulture, $"; leases granted in all {granted}"), output);
    }

    /// <summary>
    /// Open quota leases, open reservations and usage events in the streams, read from Redis by key name (every shard's).
    /// The only place this file names Redis keys; everything else goes through the product's surfaces (metrics, verify,
    /// usage rows).
    /// </summary>
    private static async Task<(long Leases, long Reservations, long UsageEvents)> OpenInRedisAsync(RespClient redis, ProjectionKeys keys) => (
        await ShardedRedis.CountAsync(redis, keys.Leases),
        await ShardedRedis.CountAsync(redis, keys.Reservations),
        await ShardedRedis.UsageLengthAsync(redis, keys));

    /// <summary>Waits for a usage row of every request answered 200 and asserts there is exactly one each; returns how many.</summary>
    private static async Task<long> AssertEachSuccessHasOneUsageRowAsync(GatewayStack stack, List<FaultTraffic.Outcome> outcomes)
    {
        var served = outcomes.Where(o => o.Status == 200).Select(o => o.RequestId!).ToList();
        Assert.NotEmpty(served);
        Dictionary<string, long> rows = [];
        await Eventually.TrueAsync(async () =>
        {
            rows = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
            return served.All(rows.ContainsKey);
        }, $"a usage row for each of {served.Count} requests answered 200 (found {rows.Count})", TimeSpan.FromSeconds(120));
        Assert.All(served, id => Assert.Equal(1, rows[id]));
        return rows.Values.Sum();
    }

    private static async Task<long> GrantedAsync(IEnumerable<ProxyProcess> replicas)
    {
        long sum = 0;
        foreach (var r in replicas) sum += await MetricAsync(r, "tokengate_leases_granted_total");
        return sum;
    }

    /// <summary>A counter from a replica's management port (summed over its series; 0 when not exported yet).</summary>
    private static async Task<long> MetricAsync(ProxyProcess replica, string name)
    {
        using var http = new HttpClient();
        var text = await http.GetStringAsync(new Uri(replica.ManagementUrl, "metrics"));
        double sum = 0;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith(name, StringComparison.Ordinal) || line.Length <= name.Length || line[name.Length] is not (' ' or '{')) continue;
            sum += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        }
        return (long)sum;
    }

    private static string Excerpt(FaultTraffic.Outcome o) => o.Body[..Math.Min(300, o.Body.Length)];

    /// <summary>
    /// Steady traffic of one key through two lanes, one per replica: two clients on each, streamed and not in turn, and
    /// on the second lane a third client sending slow streams (20 chunks, 25 ms apart), so a kill lands mid-stream too. A
    /// lane can be detached (its replica is about to die: its clients wait) and attached to a replacement.
    /// </summary>
    private sealed class LeasedLoad : IAsyncDisposable
    {
        private static readonly KeyValuePair<string, string>[] SlowStream = [new("x-mock-output-tokens", "20"), new("x-mock-chunk-delay-ms", "25")];
        private readonly string _key;
        private readonly Lane[] _lanes = [new(), new()];
        private readonly CancellationTokenSource _stop = new();
        private readonly List<HttpClient> _clients = [];
        private readonly List<Task> _workers = [];

        public LeasedLoad(string key) => _key = key;

        public IEnumerable<FaultTraffic.Outcome> All => _lanes.SelectMany(l => l.Outcomes);

        public IEnumerable<FaultTraffic.Outcome> Outcomes(int lane) => _lanes[lane].Outcomes;

        public int Served(int lane) => _lanes[lane].Outcomes.Count(o => o.Status == 200);

        /// <summary>Points the lane at <paramref name="replica"/> once it serves the key, and starts its clients (the first time).</summary>
        public async Task AttachAsync(int lane, ProxyProcess replica)
        {
            var http = new HttpClient { BaseAddress = replica.Url, Timeout = TimeSpan.FromSeconds(60) };
            _clients.Add(http);
            await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(http, _key, stream: false)).Status == 200, "the key to work on the replica");
            var l = _lanes[lane];
            Volatile.Write(ref l.Client, http);
            l.Up.TrySetResult();
            if (!l.Started)
            {
                l.Started = true;
                for (var worker = 0; worker < 2; worker++) _workers.Add(RunAsync(l, worker, slow: false));
                if (lane == 1) _workers.Add(RunAsync(l, 0, slow: true));
            }
        }

        /// <summary>Stops sending through the lane; requests already sent run on (and are cut if the replica dies).</summary>
        public void Detach(int lane)
        {
            var l = _lanes[lane];
            l.Up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref l.Client, null);
        }

        private Task RunAsync(Lane lane, int worker, bool slow) => Task.Run(async () =>
        {
            var i = 0;
            while (!_stop.IsCancellationRequested)
            {
                if (Volatile.Read(ref lane.Client) is not { } http)
                {
                    try { await lane.Up.Task.WaitAsync(_stop.Token); }
                    catch (OperationCanceledException) { break; }
                    continue;
                }
                var stream = slow || (i++ + worker) % 2 == 0;
                lane.Outcomes.Enqueue(await FaultTraffic.SendAsync(http, _key, stream, slow ? SlowStream : null));
            }
        });

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
            _stop.Dispose();
        }

        private sealed class Lane
        {
            public HttpClient? Client;
            public volatile TaskCompletionSource Up = new(TaskCreationOptions.RunContinuationsAsynchronously);
            public bool Started;
            public ConcurrentQueue<FaultTraffic.Outcome> Outcomes { get; } = new();
        }
    }
}
