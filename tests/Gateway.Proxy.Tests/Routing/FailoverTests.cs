using System.Net;
using System.Net.Sockets;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.MockUpstream.Recording;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Tests.Routing;

public sealed class FailoverTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(settings: new Dictionary<string, string?>
    {
        ["TokenGate:Proxy:CooldownAfterFailures"] = "1",
        ["TokenGate:Proxy:CooldownSeconds"] = "60",
    });

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static int ClosedPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Connect_error_fails_over_to_the_next_tier_and_cools_the_account_down()
    {
        var dead = _h.MockUpstream("default/dead", priority: 0) with { BaseUrl = $"http://127.0.0.1:{ClosedPort()}/v1" };
        await _h.Projection.PutUpstreamsAsync(dead, _h.MockUpstream("default/backup", priority: 1));
        var c = await _h.CreateCallerAsync();
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
            return r.StatusCode == HttpStatusCode.OK;
        }, "a request served through the backup");
        // The usage event is written after the response reached the client (settlement), so wait for it.
        var usage = await Eventually.ReturnsAsync(async () => (await _h.UsageEventsAsync()).LastOrDefault(e => e.KeyId == c.Key.KeyId && e.Status == 200),
            "the usage event of the request the backup served");
        Assert.Equal("default/backup", usage.Upstream);

        var metrics = await _h.MetricsAsync();
        Assert.Contains("tokengate_proxy_upstream_cooldown{upstream=\"default/dead\"} 1", metrics);
        Assert.Contains(metrics.Split('\n'), l => l.StartsWith("tokengate_proxy_upstream_requests_total{", StringComparison.Ordinal)
            && l.Contains("upstream=\"default/dead\"", StringComparison.Ordinal) && l.Contains("outcome=\"error\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Server_errors_are_retried_on_another_account_before_the_first_byte()
    {
        await _h.Projection.PutUpstreamsAsync(_h.MockUpstream("default/a", priority: 0), _h.MockUpstream("default/b", priority: 0));
        var c = await _h.CreateCallerAsync();
        // Wait until the proxy sees both accounts.
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
            var all = await _h.UsageEventsAsync();
            return all.Any(e => e.Upstream is "default/a" or "default/b");
        }, "the new upstream list");
        var before = (await _h.MockRequestsAsync()).Count;
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("x-mock-status", "503");
        using var response = await _h.Http.SendAsync(request);
        // Both accounts answered 503: the last answer is passed through after one retry.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(before + 2, (await _h.MockRequestsAsync()).Count);
    }

    [Fact]
    public async Task Dropped_connection_is_502_when_no_other_account_exists()
    {
        var c = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("x-mock-fault", "drop");
        using var response = await _h.Http.SendAsync(request);
        await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.BadGateway, "upstream_error", "server_error");
    }

    [Fact]
    public async Task User_upstream_selector_restricts_accounts()
    {
        await _h.Projection.PutUpstreamsAsync(
            _h.MockUpstream("default/shared", labels: new() { ["pool"] = "shared" }),
            _h.MockUpstream("default/dedicated", priority: 5, labels: new() { ["pool"] = "team-a" }));
        var c = await _h.CreateCallerAsync(user: u => u with { UpstreamSelector = new LabelSelector { MatchLabels = new() { ["pool"] = "team-a" } } });
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
            var mine = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
            return mine.Count > 0 && mine[^1].Upstream == "default/dedicated";
        }, "a request served by the dedicated account");
    }

    [Fact]
    public async Task Dedicated_accounts_serve_first_then_the_shared_pool_unless_fallback_is_off()
    {
        var teamA = new LabelSelector { MatchLabels = new() { ["pool"] = "team-a" } };
        var dedicated = _h.MockUpstream("default/team-a", priority: 5, labels: new() { ["pool"] = "team-a" });
        await _h.Projection.PutUpstreamsAsync(_h.MockUpstream("default/shared"), dedicated);
        var withFallback = await _h.CreateCallerAsync(user: u => u with { DedicatedSelector = teamA });
        var dedicatedOnly = await _h.CreateCallerAsync(user: u => u with { DedicatedSelector = teamA, FallbackToShared = false });

        // The dedicated account serves first although the shared one has the better priority.
        for (var i = 0; i < 5; i++)
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", withFallback.ApiKey, Chat));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        await Eventually.TrueAsync(async () => (await _h.UsageEventsAsync()).Count(e => e.KeyId == withFallback.Key.KeyId) == 5, "five usage events");
        Assert.All((await _h.UsageEventsAsync()).Where(e => e.KeyId == withFallback.Key.KeyId), e => Assert.Equal("default/team-a", e.Upstream));

        // The dedicated account goes down: one user moves on to the shared pool, the other gets an error.
        await _h.Projection.PutUpstreamsAsync(_h.MockUpstream("default/shared"), dedicated with { BaseUrl = "http://127.0.0.1:1/v1" });
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", withFallback.ApiKey, Chat));
            return r.StatusCode == HttpStatusCode.OK && (await _h.UsageEventsAsync()).Where(e => e.KeyId == withFallback.Key.KeyId).Last().Upstream == "default/shared";
        }, "the shared pool to serve once the dedicated account fails");
        var sharedBefore = (await _h.MockRequestsAsync()).Count;
        using (var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", dedicatedOnly.ApiKey, Chat)))
            Assert.True((int)r.StatusCode >= 500, $"fallbackToShared: false still answered {(int)r.StatusCode}");
        Assert.Equal(sharedBefore, (await _h.MockRequestsAsync()).Count);
    }

    [Fact]
    public async Task Azure_account_gets_deployment_url_api_version_and_api_key()
    {
        var azure = new UpstreamProjection
        {
            Name = "default/azure",
            Provider = Providers.AzureOpenAI,
            BaseUrl = _h.MockUrl.ToString().TrimEnd('/'),
            Credential = ProxyHarness.MockCredential,
            Models = [new UpstreamModel { Name = "gpt-4o-mini", UpstreamName = "mini-deployment" }],
        };
        await _h.Projection.PutUpstreamsAsync(azure);
        var c = await _h.CreateCallerAsync();
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
            return (await _h.UsageEventsAsync()).Any(e => e.Upstream == "default/azure" && e.Status == 200);
        }, "a request served by the Azure account");
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path.StartsWith("/openai/", StringComparison.Ordinal));
        Assert.Equal("/openai/deployments/mini-deployment/chat/completions", upstream.Path);
        Assert.Equal("?api-version=2024-10-21", upstream.Query);
        var credential = Assert.Single(upstream.Credentials);
        Assert.Equal("api-key", credential.Header);
        Assert.Equal(RecordedRequest.HashCredential(ProxyHarness.MockCredential), credential.Sha256);
    }

    [Fact]
    public async Task Anthropic_account_serves_only_the_anthropic_surface()
    {
        var anthropic = _h.MockUpstream("default/anthropic") with { Provider = Providers.Anthropic };
        await _h.Projection.PutUpstreamsAsync(anthropic);
        var c = await _h.CreateCallerAsync();
        await Eventually.TrueAsync(async () =>
        {
            using var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
            return r.StatusCode == HttpStatusCode.NotFound;
        }, "OpenAI routes to lose the anthropic-only account");
        using var request = ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude-sonnet-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}""");
        request.Headers.Authorization = new("Bearer", c.ApiKey);
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/messages");
        Assert.Equal("x-api-key", Assert.Single(upstream.Credentials).Header);
    }

    [Fact]
    public async Task A_stream_cut_after_its_headers_counts_as_a_failure_and_cools_the_account_down()
    {
        // Account "cut" answers 200 and a first event, then breaks the connection when the test says so (after the
        // client has read that event, so the proxy surely had the headers): the failure comes after the headers.
        var seen = 0;
        var breakNow = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var cutter = await HostileUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref seen);
            await context.Request.Body.CopyToAsync(Stream.Null);
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n");
            await context.Response.Body.FlushAsync();
            await breakNow.Task.WaitAsync(TimeSpan.FromSeconds(60));
            context.Abort();
        });
        var cut = _h.MockUpstream("default/cut", priority: 0) with { BaseUrl = new Uri(cutter.BaseUrl, "v1").ToString() };
        await _h.Projection.PutUpstreamsAsync(cut, _h.MockUpstream("default/backup", priority: 1));
        var c = await _h.CreateCallerAsync();
        const string stream = """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""";

        // Until the proxy sees the new list, the default account answers; the first request that reaches "cut" is cut.
        await Eventually.TrueAsync(async () =>
        {
            using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, stream);
            using var response = await _h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (Volatile.Read(ref seen) == 0)
            {
                await response.Content.ReadAsStringAsync();
                return false;
            }
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            Assert.True(await body.ReadAsync(new byte[1024]) > 0);
            breakNow.SetResult();
            await Assert.ThrowsAnyAsync<Exception>(async () => { while (await body.ReadAsync(new byte[1024]) > 0) { } });
            return true;
        }, "a request to reach the account that cuts its streams");

        // One failure opens the circuit here (CooldownAfterFailures 1): "cut" cools down and the backup serves.
        await Eventually.TrueAsync(async () => (await _h.MetricsAsync()).Contains("tokengate_proxy_upstream_cooldown{upstream=\"default/cut\"} 1", StringComparison.Ordinal),
            "the account that cut a stream to cool down");
        using (var next = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, stream)))
        {
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
            Assert.Contains("[DONE]", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(1, Volatile.Read(ref seen));
        // Both metered: the cut as a 502 charged for what was produced, the served one as a 200.
        await Eventually.TrueAsync(async () =>
        {
            var mine = (await _h.UsageEventsAsync()).Where(e => e.KeyId == c.Key.KeyId).ToList();
            return mine.Any(e => e.Upstream == "default/cut" && e.Status == 502) && mine.Any(e => e.Upstream == "default/backup" && e.Status == 200);
        }, "the usage of the cut and of the served request");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_malformed_answer_is_passed_on_and_counts_as_a_failure_that_cools_the_account_down(bool stream)
    {
        // Account "garbled" answers 200 with SSE events whose JSON breaks off (streams) or a JSON body cut mid-string,
        // complete at the HTTP level. The answer has begun when that shows, so it is passed on as it came; the account
        // is failing all the same.
        var seen = 0;
        await using var garbled = await HostileUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref seen);
            using var reader = new StreamReader(context.Request.Body);
            var isStream = (await reader.ReadToEndAsync()).Contains("\"stream\":true", StringComparison.Ordinal);
            context.Response.ContentType = isStream ? "text/event-stream" : "application/json";
            await context.Response.WriteAsync(isStream
                ? "data: {\"id\":\"g1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\n\ndata: [DONE]\n\n"
                : "{\"id\":\"g1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hel");
        });
        await _h.Projection.PutUpstreamsAsync(
            _h.MockUpstream("default/garbled", priority: 0) with { BaseUrl = new Uri(garbled.BaseUrl, "v1").ToString() },
            _h.MockUpstream("default/backup", priority: 1));
        var c = await _h.CreateCallerAsync();
        var json = stream
            ? """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"""
            : Chat;

        // Until the proxy sees the new list, the default account answers; the first answer from "garbled" comes through as it was sent.
        var first = "";
        await Eventually.TrueAsync(async () =>
        {
            using var response = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, json));
            first = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            return Volatile.Read(ref seen) > 0;
        }, "a request to reach the account that garbles its answers");
        Assert.Contains("\"content\":\"Hel", first, StringComparison.Ordinal);

        // CooldownAfterFailures 1: "garbled" cools down and the backup serves the next request.
        await Eventually.TrueAsync(async () => (await _h.MetricsAsync()).Contains("tokengate_proxy_upstream_cooldown{upstream=\"default/garbled\"} 1", StringComparison.Ordinal),
            "the account that garbled an answer to cool down");
        Assert.Contains((await _h.MetricsAsync()).Split('\n'), l => l.StartsWith("tokengate_proxy_upstream_requests_total{", StringComparison.Ordinal)
            && l.Contains("upstream=\"default/garbled\"", StringComparison.Ordinal) && l.Contains("outcome=\"malformed\"", StringComparison.Ordinal));
        using (var next = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, json)))
        {
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
            Assert.DoesNotContain("\"id\":\"g1\"", await next.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.Equal(1, Volatile.Read(ref seen));
        // The garbled answer is metered by estimate (its usage never came).
        var usage = await Eventually.ReturnsAsync(async () => (await _h.UsageEventsAsync()).FirstOrDefault(e => e.KeyId == c.Key.KeyId && e.Upstream == "default/garbled"),
            "the usage event of the garbled answer");
        Assert.Equal(200, usage.Status);
        Assert.True(usage.Estimated);
    }
}
