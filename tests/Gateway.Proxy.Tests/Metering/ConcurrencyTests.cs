using System.Net;
using Gateway.Core.Pricing;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Metering;

/// <summary>A small balance under parallel requests through two replicas, in exact mode and with quota leases on (a balance
/// this small gets no lease: admission stays exact near the edge).</summary>
public abstract class ConcurrencyTests(bool leases) : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public sealed class Exact() : ConcurrencyTests(leases: false);

    public sealed class Leased() : ConcurrencyTests(leases: true);

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(proxies: 2,
        settings: new Dictionary<string, string?> { ["TokenGate:Leases:Enabled"] = leases ? "true" : "false" });
    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Parallel_requests_through_two_replicas_never_overspend_and_each_success_has_one_usage_row()
    {
        const decimal balance = 0.0005m;
        var c = await _h.CreateCallerAsync(balance);
        var clients = new[] { _h.ClientFor(0), _h.ClientFor(1) };
        var tasks = Enumerable.Range(0, 60).Select(async i =>
        {
            using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, """{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"go"}]}""");
            request.Headers.Add("x-mock-output-tokens", "90");
            using var response = await clients[i % 2].SendAsync(request);
            await response.Content.ReadAsStringAsync();
            return response.StatusCode;
        }).ToList();
        var statuses = await Task.WhenAll(tasks);
        var ok = statuses.Count(s => s == HttpStatusCode.OK);
        Assert.True(ok > 0);
        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.Equal(60, ok + statuses.Count(s => s == HttpStatusCode.TooManyRequests));

        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var mine = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
            return mine.Count >= ok ? mine : null;
        }, "a usage row per successful request");
        Assert.Equal(ok, rows.Count);
        Assert.Equal(ok, rows.Select(r => r.RequestId).Distinct().Count());
        Assert.All(rows, r => Assert.Equal(200, r.Status));

        var charged = rows.Sum(r => Money.ToMicrosCeiling(r.Cost));
        Assert.True(charged <= Money.ToMicrosFloor(balance), $"charged {charged} micro-dollars against a balance of {Money.ToMicrosFloor(balance)}");
        // Every reservation was settled: the balance is exactly the initial one minus the actual costs.
        Assert.Equal(Money.ToMicrosFloor(balance) - charged, await _h.Projection.BalanceMicrosAsync(c.User.UserId));
        foreach (var client in clients) client.Dispose();
    }
}
