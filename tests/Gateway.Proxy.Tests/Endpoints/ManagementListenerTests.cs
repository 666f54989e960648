using System.Net;
using System.Text.Json;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Endpoints;

/// <summary>/metrics only on the management listener; health on both; readiness and tokengate_proxy_redis_up follow Redis.</summary>
public sealed class ManagementListenerTests
{
    [Fact]
    public async Task Metrics_are_served_on_the_management_listener_only()
    {
        await using var h = await ProxyHarness.StartAsync();
        Assert.NotEqual(h.ProxyUrl.Port, h.ManagementUrls[0].Port);
        using var management = new HttpClient { BaseAddress = h.ManagementUrls[0] };

        var caller = await h.CreateCallerAsync();
        using var apiOnPublic = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey,
            """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, apiOnPublic.StatusCode);
        var metrics = await management.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("tokengate_proxy_requests_total{", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // The public port has no /metrics: the proxy's own provider-shaped 404, whatever the Host header says.
        using var publicMetrics = await h.Http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, publicMetrics.StatusCode);
        using (var doc = JsonDocument.Parse(await publicMetrics.Content.ReadAsStringAsync()))
            Assert.Equal("unknown_url", doc.RootElement.GetProperty("error").GetProperty("code").GetString());
        using var spoofed = new HttpRequestMessage(HttpMethod.Get, "/metrics");
        spoofed.Headers.Host = "127.0.0.1:" + h.ManagementUrls[0].Port;
        using var spoofedResponse = await h.Http.SendAsync(spoofed);
        Assert.Equal(HttpStatusCode.NotFound, spoofedResponse.StatusCode);
        Assert.DoesNotContain("tokengate_proxy_", await spoofedResponse.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Health and readiness answer on both; the API is not served on the management port.
        foreach (var client in new[] { h.Http, management })
        {
            Assert.Equal("ok", await client.GetStringAsync("/healthz"));
            Assert.Equal("ready", await client.GetStringAsync("/readyz"));
        }
        using var apiOnManagement = await management.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey,
            """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, apiOnManagement.StatusCode);
    }

    [Fact]
    public async Task Readiness_fails_on_both_listeners_while_Redis_is_unreachable()
    {
        await using var redis = await ThrowawayRedisServer.StartAsync();
        await using var h = await ProxyHarness.StartAsync(redis: redis.Address, withDefaultUpstream: false);
        using var management = new HttpClient { BaseAddress = h.ManagementUrls[0] };
        var clients = new[] { h.Http, management };
        foreach (var c in clients) await Eventually.TrueAsync(async () => (await c.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK, "ready while Redis is up", TimeSpan.FromSeconds(20));

        redis.Kill();
        foreach (var c in clients)
        {
            await Eventually.TrueAsync(async () => (await c.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable, "not ready while Redis is down", TimeSpan.FromSeconds(20));
            Assert.Contains("Redis", await (await c.GetAsync("/readyz")).Content.ReadAsStringAsync(), StringComparison.Ordinal);
            Assert.Equal("ok", await c.GetStringAsync("/healthz"));
        }
        Assert.Contains("tokengate_proxy_redis_up 0", (await h.MetricsAsync()).Split('\n'));

        await redis.RestartAsync();
        foreach (var c in clients) await Eventually.TrueAsync(async () => (await c.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK, "ready again once Redis is back", TimeSpan.FromSeconds(30));
        Assert.Contains("tokengate_proxy_redis_up 1", (await h.MetricsAsync()).Split('\n'));
    }
}
