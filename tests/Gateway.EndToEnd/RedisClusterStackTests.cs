using System.Collections.Concurrent;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.EndToEnd.Faults;
using Gateway.Testing;

namespace Gateway.EndToEnd;

/// <summary>
/// Issue #11, Redis Cluster: the whole gateway — operator (projection, ledger writer, sweeper), an in-process proxy in
/// exact mode and a proxy process with quota leases — on a three-master Redis Cluster started on loopback, with
/// <c>cluster=true</c> in the connection string and nothing else changed. Every request that succeeds is metered once,
/// and the conservation check (which reads every shard) is clean.
/// </summary>
public sealed class RedisClusterStackTests
{
    [Fact]
    public async Task The_gateway_serves_meters_and_conserves_money_on_a_three_master_Redis_Cluster()
    {
        await using var cluster = await ThrowawayRedisCluster.StartAsync();
        await using var stack = await GatewayStack.StartAsync(redis: cluster.ConnectionString);
        var key = await FaultTraffic.LoadKeyAsync(stack);
        using var replica = await ProxyProcess.StartAsync(stack, "--TokenGate:Leases:Enabled", "true", "--TokenGate:Leases:Ttl", "00:00:05");
        using var exact = new HttpClient { BaseAddress = stack.ProxyUrl, Timeout = TimeSpan.FromSeconds(60) };
        using var leased = new HttpClient { BaseAddress = replica.Url, Timeout = TimeSpan.FromSeconds(60) };
        await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(exact, key, stream: false)).Status == 200, "the key to work on the cluster");

        var outcomes = new ConcurrentQueue<FaultTraffic.Outcome>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 30; i++)
                outcomes.Enqueue(await FaultTraffic.SendAsync(worker % 2 == 0 ? exact : leased, key, stream: (i + worker) % 2 == 0));
        })));

        Assert.All(outcomes, o => Assert.Equal(200, o.Status));
        var ids = outcomes.Select(o => o.RequestId!).ToList();
        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var found = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, ids);
            return ids.All(found.ContainsKey) ? found : null;
        }, "a usage row for every request");
        Assert.All(ids, id => Assert.Equal(1, rows[id]));

        // The leased replica really leased, on the cluster. Killed, its lease is reclaimed by the operator's sweeper.
        await using var redis = await RedisClients.ConnectAsync(cluster.ConnectionString);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        Assert.True(await ShardedRedis.CountAsync(redis, keys.Leases) > 0, "the leased replica holds a lease");
        replica.Kill();
        await Eventually.TrueAsync(async () => await ShardedRedis.CountAsync(redis, keys.Leases) == 0
            && await ShardedRedis.UsageLengthAsync(redis, keys) == 0, "the sweeper to reclaim the lease and the usage streams to drain",
            TimeSpan.FromSeconds(90));
        var counts = await FaultTraffic.AssertConservedAsync(stack, cluster.ConnectionString);
        Assert.Equal(0, counts.OpenLeases);
    }
}
