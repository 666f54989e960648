using System.Net;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Endpoints;

public sealed class ResilienceTests
{
    private const string Stream = """{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"write a long story"}]}""";

    [Fact]
    public async Task Redis_down_is_503_with_a_clear_error_and_not_ready()
    {
        await using var h = await ProxyHarness.StartAsync(redis: "127.0.0.1:1");
        var c = await h.CreateCallerAsync();
        using var response = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, """{"model":"gpt-4o-mini","messages":[]}"""));
        var error = await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.ServiceUnavailable, "gateway_unavailable", "server_error");
        Assert.Contains("Redis", error.GetProperty("message").GetString());
        using var ready = await h.Http.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Empty(await h.MockRequestsAsync());
    }

    [Fact]
    public async Task Client_disconnect_mid_stream_cancels_upstream_and_charges_what_was_produced()
    {
        await using var h = await ProxyHarness.StartAsync();
        var c = await h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Stream);
        request.Headers.Add("x-mock-chunk-delay-ms", "200");
        request.Headers.Add("x-mock-output-tokens", "200");
        using (var response = await h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            await using var body = await response.Content.ReadAsStreamAsync();
            using var reader = new StreamReader(body);
            // Read until some generated text arrived, then hang up.
            while (true)
            {
                var line = await reader.ReadLineAsync();
                if (line is null || line.Contains("\"content\":\"", StringComparison.Ordinal)) break;
            }
        }
        var usage = await h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal(499, usage.Status);
        Assert.Equal("client_disconnected", usage.ErrorCode);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Output > 0 && usage.Tokens.Output < 200);
        Assert.True(usage.Cost > 0);
    }

    [Fact]
    public async Task Upstream_cut_mid_stream_aborts_the_client_and_charges_what_was_produced()
    {
        await using var h = await ProxyHarness.StartAsync();
        var c = await h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Stream);
        request.Headers.Add("x-mock-fault", "cut");
        request.Headers.Add("x-mock-chunk-delay-ms", "20");
        // Depending on where the cut lands, the client either got the stream's start and then a reset
        // connection, or (nothing was forwarded yet) a clean 502; it never gets a body that looks complete.
        // Timing-dependent by nature (where the mock's cut falls relative to the proxy's reads); each outcome is checked.
        try
        {
            using var response = await h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                await Assert.ThrowsAnyAsync<Exception>(async () => await response.Content.ReadAsStringAsync());
            }
            else
            {
                Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
                Assert.Contains("upstream_error", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }
        catch (HttpRequestException)
        {
            // The proxy forwarded the stream's start, then aborted the connection (a reset). When the reset reaches
            // the client before it has read what was sent (a loaded machine), the client's kernel drops that data and
            // the client sees only the reset. The usage event below still shows the cut was metered as a 502.
        }
        var usage = await h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal(502, usage.Status);
        Assert.Equal("upstream_error", usage.ErrorCode);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Input > 0);
    }
}
