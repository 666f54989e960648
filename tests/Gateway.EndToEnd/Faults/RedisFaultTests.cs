using System.Text.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;
using Npgsql;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): Redis dies under steady traffic through two proxy replicas (SIGKILL) and comes back from its append-only
/// file. While it is gone every request is refused at once with a 503 in the provider's shape and none is served
/// unmetered; when it is back, traffic resumes by itself (nothing restarted), and every request that was served
/// has exactly one usage row, or, if it was in flight when Redis died, a reservation still open for the sweeper.
/// Redis runs with appendfsync always here: DESIGN's durability assumption for the usage stream (see
/// docs/reliability.md); without persistence a crash loses the events not yet persisted.
/// </summary>
public sealed class RedisFaultTests
{
    [Fact]
    public async Task Redis_killed_under_traffic_refuses_in_provider_shape_then_resumes_with_nothing_unmetered()
    {
        await using var redis = await ThrowawayRedisServer.StartAsync(appendOnly: true);
        await using var stack = await GatewayStack.StartAsync(redis.Address);
        var key = await FaultTraffic.LoadKeyAsync(stack);
        await using var load = await TwoReplicaLoad.StartAsync(stack, key);
        var byReplica = load.ByReplica;
        // Every assertion below holds for each replica's requests, and for all of them together.
        var outcomes = load.All;
        TimeSpan recovery;
        var killedAtForReport = DateTime.MinValue;
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.Status == 200) >= 10 * FaultTraffic.Scale), "traffic before the fault");

            redis.Kill();
            var killedAt = killedAtForReport = DateTime.UtcNow;
            // Down until at least ten requests sent after the kill were answered, by each replica.
            foreach (var replicaOutcomes in byReplica)
                await Eventually.TrueAsync(() => Task.FromResult(replicaOutcomes.Count(o => o.SentAt > killedAt) >= 10 * FaultTraffic.Scale), "requests while Redis is down, on each replica");
            await FaultTraffic.HoldFaultAsync(killedAt, TimeSpan.FromSeconds(30));
            var restartedAt = DateTime.UtcNow;
            await redis.RestartAsync();

            // Nothing restarted but Redis: both replicas reconnect and serve again (recovery: until the later of them did).
            foreach (var replicaOutcomes in byReplica)
            {
                await Eventually.TrueAsync(() => Task.FromResult(replicaOutcomes.Any(o => o.SentAt > restartedAt && o.Status == 200)), "traffic to resume by itself on each replica");
                await Eventually.TrueAsync(() => Task.FromResult(replicaOutcomes.Count(o => o.SentAt > restartedAt && o.Status == 200) >= 5 * FaultTraffic.Scale),
                    "traffic after the restart on each replica");
            }
            recovery = byReplica.Max(q => q.Where(o => o.SentAt > restartedAt && o.Status == 200).Min(o => o.SentAt)) - restartedAt;

            foreach (var replicaOutcomes in byReplica)
            {
                var whileDown = replicaOutcomes.Where(o => o.SentAt > killedAt && o.SentAt < restartedAt).ToList();
                Assert.NotEmpty(whileDown);
                foreach (var o in whileDown)
                {
                    Assert.Equal(503, o.Status);
                    using var error = JsonDocument.Parse(o.Body);
                    Assert.Equal("gateway_unavailable", error.RootElement.GetProperty("error").GetProperty("code").GetString());
                }
            }
        }
        finally
        {
            await load.StopAsync();
        }

        // Seen once (two 500s among requests sent before the kill, not reproduced in 7 runs since): printed for diagnosis.
        foreach (var odd in outcomes.Where(o => o.Status is not (200 or 503 or 0)))
        {
            var note = $"unexpected status {odd.Status} (sent {(odd.SentAt - killedAtForReport).TotalMilliseconds:0} ms after the kill): {odd.Body[..Math.Min(300, odd.Body.Length)]}";
            Console.WriteLine(note);
            if (Environment.GetEnvironmentVariable("TG_CHAOS_REPORT") is { Length: > 0 } file) File.AppendAllText(file, note + Environment.NewLine);
        }
        // Every served request is metered exactly once, or still reserved (in flight when Redis died; the sweeper charges it).
        var served = outcomes.Where(o => o.Status == 200).Select(o => o.RequestId!).ToList();
        Assert.True(served.Count >= 20);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        await using var client = await RespClient.ConnectAsync(redis.Address);
        await Eventually.TrueAsync(async () =>
        {
            var rows = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
            foreach (var id in served)
            {
                var n = rows.GetValueOrDefault(id);
                if (n > 1) throw new InvalidOperationException($"request {id} has {n} usage rows");
                if (n == 0 && await ShardedRedis.FindReservationAsync(client, keys, id) is null) return false;
            }
            return true;
        }, "every served request to have its usage row (or an open reservation)");

        // And the money adds up: ledger = balance + open reservations + events still in the stream.
        await FaultTraffic.AssertConservedAsync(stack, redis.Address);
        var persisted = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
        var reservedOnly = 0;
        var unmetered = 0;
        foreach (var id in served.Where(id => !persisted.ContainsKey(id)))
        {
            if (await ShardedRedis.FindReservationAsync(client, keys, id) is not null) reservedOnly++;
            else unmetered++;
        }
        FaultTraffic.Report("redis killed and restarted from its AOF, two replicas", outcomes.ToList(), persisted.Count, unmetered, reservedOnly, recovery, "clean");
    }

}
