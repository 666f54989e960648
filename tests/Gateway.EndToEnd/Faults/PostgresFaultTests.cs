using System.Collections.Concurrent;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): PostgreSQL stops (immediate shutdown, like a crash) under steady traffic. The
/// proxy does not need it to serve: every request keeps being answered and metered into the Redis usage stream; when
/// PostgreSQL is back the ledger writer persists what waited, and every served request has exactly one usage row.
/// </summary>
public sealed class PostgresFaultTests
{
    [Fact]
    public async Task PostgreSQL_down_under_traffic_loses_no_usage_and_stops_no_request()
    {
        await using var pg = await ThrowawayPostgresServer.StartAsync();
        await using var stack = await GatewayStack.StartAsync(postgres: pg.ConnectionString("tokengate"));
        var key = await FaultTraffic.LoadKeyAsync(stack);
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl, Timeout = TimeSpan.FromSeconds(60) };
        await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(http, key, stream: false)).Status == 200, "the key to work");

        var outcomes = new ConcurrentQueue<FaultTraffic.Outcome>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 2).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested) outcomes.Enqueue(await FaultTraffic.SendAsync(http, key, stream: (i++ + worker) % 2 == 0));
        })).ToArray();
        DateTime stoppedAt, restartedAt;
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.Status == 200) >= 10 * FaultTraffic.Scale), "traffic before the fault");
            await pg.StopAsync();
            stoppedAt = DateTime.UtcNow;
            await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.SentAt > stoppedAt) >= 30 * FaultTraffic.Scale), "traffic while PostgreSQL is down");
            await FaultTraffic.HoldFaultAsync(stoppedAt, TimeSpan.FromSeconds(60));
            restartedAt = DateTime.UtcNow;
            await pg.StartServerAsync();
            await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.SentAt > restartedAt && o.Status == 200) >= 10 * FaultTraffic.Scale), "traffic after the restart");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        // Served all along: nothing on the request path needs PostgreSQL.
        var whileDown = outcomes.Where(o => o.SentAt > stoppedAt && o.SentAt < restartedAt).ToList();
        Assert.True(whileDown.Count >= 30 * FaultTraffic.Scale);
        Assert.All(whileDown, o => Assert.Equal(200, o.Status));

        // Nothing lost: the events waited in the stream and every served request has exactly one usage row.
        var served = outcomes.Where(o => o.Status == 200).Select(o => o.RequestId!).ToList();
        await Eventually.TrueAsync(async () =>
        {
            var rows = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
            Assert.DoesNotContain(rows, r => r.Value > 1);
            return served.All(rows.ContainsKey);
        }, "the usage that waited in the stream to be persisted", TimeSpan.FromSeconds(120));

        // And the money adds up: ledger = balance + open reservations + events still in the stream.
        await FaultTraffic.AssertConservedAsync(stack, TestEnvironment.Redis);
        var persisted = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, served);
        FaultTraffic.Report("postgresql stopped and started", outcomes, persisted.Count, served.Count(id => !persisted.ContainsKey(id)), 0, null, "clean");
    }
}
