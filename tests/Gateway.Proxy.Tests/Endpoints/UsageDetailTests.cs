using System.Net;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Endpoints;

/// <summary>The client IP and the error code of failed requests reach the usage event.</summary>
public sealed class UsageDetailTests
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Successful_request_records_the_peer_address_and_no_error_code()
    {
        await using var h = await ProxyHarness.StartAsync();
        var c = await h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        // No proxy is trusted by default: a forged header changes nothing.
        request.Headers.Add("X-Forwarded-For", "203.0.113.66");
        using var response = await h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = await h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal("127.0.0.1", usage.ClientIp);
        Assert.Equal("", usage.ErrorCode);
    }

    [Fact]
    public async Task Forwarded_client_is_recorded_when_the_peer_is_a_trusted_proxy()
    {
        await using var h = await ProxyHarness.StartAsync(settings: new Dictionary<string, string?> { ["TokenGate:Proxy:TrustedProxies:0"] = "127.0.0.0/8" });
        var c = await h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("X-Forwarded-For", "198.51.100.1, 203.0.113.66, 127.0.0.5");
        using var response = await h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("203.0.113.66", (await h.WaitForUsageAsync(c.Key.KeyId)).ClientIp);
    }

    [Theory]
    [InlineData(429, "rate_limit_exceeded")] // the provider's own code
    [InlineData(500, "server_error")]         // no code in the body: its type
    [InlineData(400, "invalid_request_error")]
    public async Task Upstream_error_answer_records_the_providers_code(int status, string code)
    {
        await using var h = await ProxyHarness.StartAsync();
        var c = await h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("x-mock-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var response = await h.Http.SendAsync(request);
        Assert.Equal(status, (int)response.StatusCode);
        var usage = await h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal(status, usage.Status);
        Assert.Equal(code, usage.ErrorCode);
    }
}
