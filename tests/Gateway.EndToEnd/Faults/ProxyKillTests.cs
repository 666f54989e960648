using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): a proxy replica SIGKILLed in the middle of a stream. The client's stream ends; the
/// request's reservation stays in Redis and, once its lease has passed, the operator's sweeper charges it at the
/// reserved amount: exactly one usage row, the balance down by that much, and the conservation check clean. (The
/// lease here is the replica's 20 s total timeout + 1 s, TokenGate:Proxy:ReservationLeaseMarginSeconds; 5 minutes by
/// default.) Meanwhile the other replica (the stack's in-process proxy) serves steady traffic of another user through
/// every kill: all of it answered 200 and metered exactly once.
/// </summary>
public sealed class ProxyKillTests
{
    [Fact]
    public async Task A_replica_killed_mid_stream_leaves_a_reservation_the_sweeper_charges_once()
    {
        await using var stack = await GatewayStack.StartAsync();
        var key = await FaultTraffic.LoadKeyAsync(stack);
        var keys = new ProjectionKeys(stack.RedisPrefix);
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        var outcomes = new List<FaultTraffic.Outcome>();
        var charged = new List<string>();
        // The other replica (the stack's own) keeps serving steady traffic, streaming and not, through every kill; from
        // another user, so the killed stream's balance check below sees only its own charge.
        var steadyKey = await FaultTraffic.LoadKeyAsync(stack, "steady");
        using var survivor = new HttpClient { BaseAddress = stack.ProxyUrl, Timeout = TimeSpan.FromSeconds(60) };
        await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(survivor, steadyKey, stream: false)).Status == 200, "the steady key to work");
        var steady = new ConcurrentQueue<FaultTraffic.Outcome>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 2).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                steady.Enqueue(await FaultTraffic.SendAsync(survivor, steadyKey, stream: (i++ + worker) % 2 == 0));
                // Paced (about 100 a second per client): unpaced, two clients sent some 2,000 a second for the whole run.
                await Task.Delay(10);
            }
        })).ToArray();
        try
        {
            // One kill in make test; make chaos repeats it (TG_CHAOS_SCALE).
            for (var round = 0; round < FaultTraffic.Scale; round++)
            {
                // The killed replica runs exact mode on purpose: this is about an exact admission's orphaned reservation
                // (charged by the reservation sweeper). A leased replica killed under load is LeaseSweeperTests.
                using var replica = await ProxyProcess.StartAsync(stack,
                    "--TokenGate:Proxy:UpstreamTimeToFirstByteSeconds", "20", "--TokenGate:Proxy:UpstreamTotalTimeoutSeconds", "20",
                    "--TokenGate:Proxy:ReservationLeaseMarginSeconds", "1", "--TokenGate:Leases:Enabled", "false");
                using var http = new HttpClient { BaseAddress = replica.Url, Timeout = Timeout.InfiniteTimeSpan };

                // A stream of 200 tokens, one every 100 ms (20 s): the replica dies after its first bytes.
                using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
                {
                    Content = new StringContent("""{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}""",
                        Encoding.UTF8, "application/json"),
                };
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                request.Headers.Add("x-mock-output-tokens", "200");
                request.Headers.Add("x-mock-chunk-delay-ms", "100");
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
                var sentAt = DateTime.UtcNow;
                using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var requestId = response.Headers.GetValues("x-request-id").Single();
                await using var stream = await response.Content.ReadAsStreamAsync(deadline.Token);
                var buffer = new byte[4096];
                Assert.True(await stream.ReadAsync(buffer, deadline.Token) > 0);
                var reservation = await ShardedRedis.FindReservationAsync(redis, keys, requestId);
                Assert.NotNull(reservation);
                var reserved = (await redis.ExecuteAsync("HGET", [reservation, "reserved"])).AsInt64();
                var userId = (await redis.ExecuteAsync("HGET", [reservation, "user_id"])).AsString()!;
                var balanceBefore = (await redis.ExecuteAsync("GET", [keys.Balance(userId)])).AsInt64();

                replica.Kill();

                // The client's stream ends (cut), it does not hang.
                try
                {
                    while (await stream.ReadAsync(buffer, deadline.Token) > 0) { }
                }
                catch (Exception e) when (e is IOException or HttpRequestException && !deadline.IsCancellationRequested)
                {
                }
                outcomes.Add(new FaultTraffic.Outcome(200, requestId, "cut by SIGKILL", sentAt));

                // After the lease the sweeper charges the reservation: one usage row, the reservation gone, the balance as after admission.
                await Eventually.TrueAsync(async () =>
                    (await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, [requestId])).GetValueOrDefault(requestId) == 1
                    && (await redis.ExecuteAsync("EXISTS", [reservation])).AsInt64() == 0,
                    "the sweeper to charge the orphaned reservation", TimeSpan.FromSeconds(120));
                Assert.True(reserved > 0);
                Assert.Equal(balanceBefore, (await redis.ExecuteAsync("GET", [keys.Balance(userId)])).AsInt64());
                charged.Add(requestId);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        var rows = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, charged);
        Assert.All(charged, id => Assert.Equal(1, rows[id]));
        // The surviving replica served every request of its steady traffic, each metered exactly once.
        var served = steady.ToList();
        Assert.NotEmpty(served);
        Assert.All(served, o => Assert.True(o.Status == 200, $"the surviving replica answered {o.Status}: {o.Body[..Math.Min(300, o.Body.Length)]}"));
        var ids = served.Select(o => o.RequestId!).ToList();
        var steadyRows = await Eventually.ReturnsAsync(async () =>
        {
            var found = await FaultTraffic.UsageRowsAsync(stack.PostgresConnectionString, ids);
            return ids.All(found.ContainsKey) ? found : null;
        }, "the usage rows of the surviving replica's requests", TimeSpan.FromSeconds(120));
        Assert.All(steadyRows, r => Assert.Equal(1, r.Value));
        await FaultTraffic.AssertConservedAsync(stack, TestEnvironment.Redis);
        FaultTraffic.Report("proxy replica SIGKILLed mid-stream, the other replica serving", [.. outcomes, .. served], rows.Count + steadyRows.Count,
            charged.Count(id => !rows.ContainsKey(id)) + ids.Count(id => !steadyRows.ContainsKey(id)), 0, null, "clean");
    }
}
