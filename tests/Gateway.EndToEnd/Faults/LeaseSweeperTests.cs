using System.Collections.Concurrent;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #11's sweeper test: a proxy replica admitting through quota leases is SIGKILLed under load (streamed and not).
/// Its leases stop being returned; once past their expiry and the sweeper's grace the operator reclaims them: what their
/// flushed usage shows was used stays charged, the requests that were in flight (or completed but not yet flushed)
/// become reservations charged at their reserved amount, and the rest goes back to the balance. Afterwards no lease is
/// left, every request that completed to its client has exactly one usage row, and the conservation check is clean.
/// </summary>
public sealed class LeaseSweeperTests
{
    [Fact]
    public async Task A_replica_killed_under_load_leaves_no_completed_request_unmetered_and_no_lease_unreclaimed()
    {
        await using var stack = await GatewayStack.StartAsync();
        var key = await FaultTraffic.LoadKeyAsync(stack);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        using var replica = await ProxyProcess.StartAsync(stack, "--TokenGate:Leases:Enabled", "true", "--TokenGate:Leases:Ttl", "00:00:05");
        using var http = new HttpClient { BaseAddress = replica.Url, Timeout = TimeSpan.FromSeconds(60) };
        await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(http, key, stream: false)).Status == 200, "the key to work on the replica");

        var outcomes = new ConcurrentQueue<FaultTraffic.Outcome>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested) outcomes.Enqueue(await FaultTraffic.SendAsync(http, key, stream: (i++ + worker) % 2 == 0));
        })).ToArray();
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.Status == 200) >= 40 * FaultTraffic.Scale), "traffic before the kill");
            Assert.True(await ShardedRedis.CountAsync(redis, keys.Leases) > 0, "the replica holds leases");
            replica.Kill();
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        // The sweeper reclaims every lease (past expiry + grace) and charges what was in flight.
        await Eventually.TrueAsync(async () => await ShardedRedis.CountAsync(redis, keys.Leases) == 0
            && await ShardedRedis.CountAsync(redis, keys.Reservations) == 0,
            "the sweeper to reclaim the dead replica's leases and charge their requests in flight", TimeSpan.FromSeconds(90));

        var completed = outcomes.Where(o => o.Status == 200).Select(o => o.RequestId!).ToList();
        Assert.NotEmpty(completed);
        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var found = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, completed);
            return completed.All(found.ContainsKey) ? found : null;
        }, "a usage row for every request that completed to its client", TimeSpan.FromSeconds(60));
        Assert.All(completed, id => Assert.Equal(1, rows[id]));
        await FaultTraffic.AssertConservedAsync(stack, TestEnvironment.Redis);
        FaultTraffic.Report("proxy replica with quota leases SIGKILLed under load", outcomes.ToList(), rows.Count, unmetered: 0, reservedOnly: 0, null, "clean");
    }
}
