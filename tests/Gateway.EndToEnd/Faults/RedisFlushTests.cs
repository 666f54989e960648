using Gateway.Core.Projection;
using System.Text.Json;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): Redis is flushed (FLUSHALL) under steady traffic, streaming and not. The operator
/// notices the missing epoch and rebuilds the projection, money first (balances, key lifetimes and budgets from
/// PostgreSQL); meanwhile every request is answered 200 (a policy the proxy had cached, once its user's balance is back)
/// or 503 gateway_unavailable in the provider's shape — never "invalid key", "no balance" or a 500 —, traffic resumes
/// with nothing restarted, and every request that was served has exactly one usage row: the events the flush took from
/// the stream and the requests in flight whose reservation it took are charged again by the proxy's usage outbox.
/// The conservation checker is clean at the end.
/// </summary>
public sealed class RedisFlushTests
{
    [Fact]
    public async Task Redis_flushed_under_traffic_is_rebuilt_and_every_served_request_is_metered_once()
    {
        await using var redis = await ThrowawayRedisServer.StartAsync(appendOnly: true);
        await using var stack = await GatewayStack.StartAsync(redis.Address);
        var key = await FaultTraffic.LoadKeyAsync(stack);
        await using var client = await RespClient.ConnectAsync(redis.Address);
        // Two proxy replicas, each with its own usage outbox.
        await using var load = await TwoReplicaLoad.StartAsync(stack, key);
        var outcomes = load.All;
        var recovery = TimeSpan.Zero;
        var flushes = 0;
        try
        {
            for (var round = 0; round < FaultTraffic.Scale; round++)
            {
                var before = outcomes.Count(o => o.Status == 200);
                await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.Status == 200) >= before + 10), "traffic before the flush");
                await client.ExecuteAsync("FLUSHALL", []);
                flushes++;
                var flushedAt = DateTime.UtcNow;
                // Nothing restarted: the operator rebuilds and the same key is served again.
                await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.SentAt > flushedAt && o.Status == 200) >= 10),
                    "traffic to resume after the flush", TimeSpan.FromSeconds(120));
                var resumed = outcomes.Where(o => o.SentAt > flushedAt && o.Status == 200).Min(o => o.SentAt) - flushedAt;
                if (resumed > recovery) recovery = resumed;
            }
        }
        finally
        {
            await load.StopAsync();
        }

        foreach (var o in outcomes.Where(o => o.Status != 200))
        {
            Assert.True(o.Status == 503, $"unexpected status {o.Status}: {o.Body[..Math.Min(300, o.Body.Length)]}");
            using var error = JsonDocument.Parse(o.Body);
            Assert.Equal("gateway_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
        }

        // Every served request ends with exactly one usage row; none stays unmetered (the outbox charges what the flush took).
        var served = outcomes.Where(o => o.Status == 200).Select(o => o.RequestId!).ToList();
        Dictionary<string, long> rows = [];
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                rows = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
                return served.All(rows.ContainsKey);
            }, "every served request to have its usage row", TimeSpan.FromSeconds(120));
        }
        catch (TimeoutException)
        {
            // For diagnosis: which requests, sent when relative to the flushes, and what the stream still holds.
            var missing = outcomes.Where(o => o.Status == 200 && !rows.ContainsKey(o.RequestId!)).ToList();
            Console.WriteLine($"{missing.Count} served requests without a usage row; events in the streams {await ShardedRedis.UsageLengthAsync(client, new ProjectionKeys(stack.RedisPrefix))}");
            foreach (var o in missing.Take(20)) Console.WriteLine($"  {o.RequestId} sent {o.SentAt:HH:mm:ss.fff}");
            throw;
        }
        Assert.All(served, id => Assert.Equal(1, rows[id]));

        // The ledger writer has caught up (recharges that duplicated a row are refunded): the money adds up.
        await Eventually.TrueAsync(async () => await ShardedRedis.UsageLengthAsync(client, new ProjectionKeys(stack.RedisPrefix)) == 0,
            "the usage stream to drain", TimeSpan.FromSeconds(60));
        await FaultTraffic.AssertConservedAsync(stack, redis.Address);
        FaultTraffic.Report($"redis flushed {flushes} time(s), two replicas", outcomes.ToList(), rows.Count, unmetered: 0, reservedOnly: 0, recovery, "clean");
    }
}
