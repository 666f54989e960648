using System.Globalization;
using System.Net;
using Gateway.Core.Pricing;
using Gateway.Core.Resources;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Metering;

/// <summary>
/// Quota leases through the proxy (issue #11, TokenGate:Leases:Enabled): requests of a user far from its limits are
/// admitted against leases on two replicas, each has exactly one usage event (tagged with its lease), and the money adds
/// up at every moment: balance + what the open leases hold = initial balance − what the usage events charged.
/// </summary>
public sealed class LeasedAdmissionTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(proxies: 2,
        settings: new Dictionary<string, string?> { ["TokenGate:Leases:Enabled"] = "true" });

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Requests_through_two_replicas_are_admitted_against_leases_metered_once_each_and_the_money_adds_up()
    {
        const decimal balance = 10m;
        var c = await _h.CreateCallerAsync(balance);
        var clients = new[] { _h.ClientFor(0), _h.ClientFor(1) };
        var statuses = new List<HttpStatusCode>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async worker =>
        {
            for (var i = 0; i < 15; i++)
            {
                using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey,
                    (i + worker) % 2 == 0
                        ? """{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"go"}]}"""
                        : """{"model":"gpt-4o-mini","max_tokens":50,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"go"}]}""");
                using var response = await clients[worker % 2].SendAsync(request);
                await response.Content.ReadAsStringAsync();
                lock (statuses) statuses.Add(response.StatusCode);
            }
        }));
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s));

        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var mine = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
            return mine.Count >= 120 ? mine : null;
        }, "a usage event per request");
        Assert.Equal(120, rows.Count);
        Assert.Equal(120, rows.Select(r => r.RequestId).Distinct().Count());
        var leased = await _h.Projection.LeasedUsageAsync();
        Assert.All(rows, r => Assert.True(leased.ContainsKey(r.RequestId), $"request {r.RequestId} was not admitted against a lease"));
        Assert.InRange(leased.Values.Distinct().Count(), 2, 60);

        var charged = rows.Sum(r => Money.ToMicrosCeiling(r.Cost));
        await Eventually.TrueAsync(async () =>
        {
            var (_, held) = await _h.Projection.LeasesOfAsync(c.User.UserId);
            return await _h.Projection.BalanceMicrosAsync(c.User.UserId) + held == Money.ToMicrosFloor(balance) - charged;
        }, "balance + leases = initial − charged");
        // The metrics say so (both replicas run in this process and share its meters).
        foreach (var proxy in new[] { 0, 1 })
        {
            var metrics = await _h.MetricsAsync(proxy);
            Assert.Matches(@"(?m)^tokengate_leased_admissions_total [1-9]", metrics);
            Assert.Matches(@"(?m)^tokengate_leases_granted_total [1-9]", metrics);
        }
        foreach (var client in clients) client.Dispose();
    }

    [Fact]
    public async Task A_leased_request_carries_rate_limit_headers_and_remaining_requests_goes_down_across_requests()
    {
        // A day limit far away (a lease is granted) and no minute limit: a new minute cannot give requests back mid-test.
        var c = await _h.CreateCallerAsync(key: k => k with { Limits = new KeyLimits { RequestsPerDay = 10_000, TokensPerDay = 10_000_000 } });
        using var client = _h.ClientFor(0);
        var remaining = new List<long>();
        for (var i = 0; i < 12; i++)
        {
            using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey,
                """{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"go"}]}""");
            using var response = await client.SendAsync(request);
            await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("10000", response.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.EndsWith("s", response.Headers.GetValues("x-ratelimit-reset-requests").Single());
            Assert.Equal("10000000", response.Headers.GetValues("x-ratelimit-limit-tokens").Single());
            Assert.True(response.Headers.Contains("x-ratelimit-remaining-tokens"));
            remaining.Add(long.Parse(response.Headers.GetValues("x-ratelimit-remaining-requests").Single(), CultureInfo.InvariantCulture));
        }
        // Every request counted: each answer says less is left than the one before (a renewed lease's first answer drops
        // further, by the part of the previous slice not yet given back), and never more than the limit less the requests sent.
        for (var i = 0; i < remaining.Count; i++)
        {
            Assert.InRange(remaining[i], 0, 10_000 - (i + 1));
            if (i > 0) Assert.True(remaining[i] < remaining[i - 1], $"remaining {string.Join(", ", remaining)}");
        }

        // They were admitted under leases (with exact admissions the headers were always there).
        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var mine = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
            return mine.Count >= 12 ? mine : null;
        }, "a usage event per request");
        var leased = await _h.Projection.LeasedUsageAsync();
        Assert.All(rows, r => Assert.True(leased.ContainsKey(r.RequestId), $"request {r.RequestId} was not admitted against a lease"));
    }
}
