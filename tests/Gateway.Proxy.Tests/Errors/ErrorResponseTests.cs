using System.Net;
using System.Text;
using Gateway.Core.Resources;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Errors;

public sealed class ErrorResponseTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(settings: new Dictionary<string, string?> { ["TokenGate:Proxy:MaxRequestBodyBytes"] = "4096" });
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<HttpResponseMessage> Send(string key, string body, string contentType = "application/json", string path = "/v1/chat/completions") =>
        await _h.Http.SendAsync(ChatCompletionsTests.Post(path, key, body, contentType));

    [Fact]
    public async Task Malformed_json_is_400()
    {
        var c = await _h.CreateCallerAsync();
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o-mini","messages":[""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.BadRequest, "invalid_json", "invalid_request_error");
        Assert.True(r.Headers.Contains("x-tokengate-overhead-ms"));
    }

    [Fact]
    public async Task Missing_model_is_400()
    {
        var c = await _h.CreateCallerAsync();
        using var r = await Send(c.ApiKey, """{"messages":[]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.BadRequest, "missing_model", "invalid_request_error");
    }

    [Fact]
    public async Task Wrong_content_type_is_400()
    {
        var c = await _h.CreateCallerAsync();
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o-mini"}""", "text/plain");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.BadRequest, "invalid_content_type", "invalid_request_error");
    }

    [Fact]
    public async Task Invalid_utf8_is_400()
    {
        var c = await _h.CreateCallerAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new ByteArrayContent([.. "{\"model\":\"gpt-4o-mini\",\"x\":\""u8, 0xFF, 0xFE, .. "\"}"u8]) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.Authorization = new("Bearer", c.ApiKey);
        using var r = await _h.Http.SendAsync(request);
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.BadRequest, "invalid_encoding", "invalid_request_error");
    }

    [Fact]
    public async Task Oversized_body_is_413_in_both_shapes_with_or_without_content_length()
    {
        var c = await _h.CreateCallerAsync();
        var big = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":""" + "\"" + new string('a', 5000) + "\"}]}";
        using var r = await Send(c.ApiKey, big);
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.RequestEntityTooLarge, "request_too_large", "invalid_request_error");

        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/messages") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big))) };
        chunked.Content.Headers.ContentType = new("application/json");
        chunked.Headers.TransferEncodingChunked = true;
        chunked.Headers.Add("x-api-key", c.ApiKey);
        using var r2 = await _h.Http.SendAsync(chunked);
        await MessagesTests.AssertAnthropicError(r2, HttpStatusCode.RequestEntityTooLarge, "request_too_large");
    }

    [Fact]
    public async Task Model_outside_the_allow_lists_is_403_model_not_allowed()
    {
        var c = await _h.CreateCallerAsync(user: u => u with { AllowedModels = ["gpt-*"] }, key: k => k with { AllowedModels = ["*mini"] });
        using var ok = await Send(c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        // Allowed by the user, not by the key: the intersection decides.
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o","messages":[]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.Forbidden, "model_not_allowed", "permission_error");
    }

    [Fact]
    public async Task Unknown_model_is_404_model_not_found()
    {
        var c = await _h.CreateCallerAsync();
        using var r = await Send(c.ApiKey, """{"model":"no-such-model","messages":[]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.NotFound, "model_not_found", "invalid_request_error");
        // Readable on the wire too (curl users see the raw body): quotes are not \u0027-escaped.
        Assert.Contains("'no-such-model'", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Disabled_expired_superseded_and_suspended_keys_are_refused()
    {
        var disabled = await _h.CreateCallerAsync(key: k => k with { Disabled = true });
        using (var r = await Send(disabled.ApiKey, """{"model":"gpt-4o-mini"}"""))
            await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.Forbidden, "key_disabled", "permission_error");
        var expired = await _h.CreateCallerAsync(key: k => k with { ExpiresAt = DateTimeOffset.UtcNow.AddMinutes(-1) });
        using (var r = await Send(expired.ApiKey, """{"model":"gpt-4o-mini"}"""))
            await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.Forbidden, "key_expired", "permission_error");
        var superseded = await _h.CreateCallerAsync(key: k => k with { ValidUntil = DateTimeOffset.UtcNow.AddMinutes(-1) });
        using (var r = await Send(superseded.ApiKey, """{"model":"gpt-4o-mini"}"""))
            await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.Unauthorized, "invalid_api_key", "invalid_request_error");
        var suspended = await _h.CreateCallerAsync(user: u => u with { Suspended = true });
        using (var r = await Send(suspended.ApiKey, """{"model":"gpt-4o-mini"}"""))
            await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.Forbidden, "user_suspended", "permission_error");
    }

    [Fact]
    public async Task Rate_limit_is_429_with_retry_after_and_ratelimit_headers()
    {
        var c = await _h.CreateCallerAsync(key: k => k with { Limits = new KeyLimits { RequestsPerMinute = 2 } });
        for (var i = 0; i < 2; i++)
        {
            using var ok = await Send(c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("2", ok.Headers.GetValues("x-ratelimit-limit-requests").Single());
            Assert.Equal((1 - i).ToString(System.Globalization.CultureInfo.InvariantCulture), ok.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        }
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.TooManyRequests, "rate_limit_exceeded", "requests");
        Assert.True(int.Parse(r.Headers.GetValues("Retry-After").Single(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
        Assert.Equal("2", r.Headers.GetValues("x-ratelimit-limit-requests").Single());
        Assert.Equal("0", r.Headers.GetValues("x-ratelimit-remaining-requests").Single());
        Assert.EndsWith("s", r.Headers.GetValues("x-ratelimit-reset-requests").Single());
    }

    [Fact]
    public async Task Token_rate_limit_is_429_with_the_tokens_headers()
    {
        var c = await _h.CreateCallerAsync(key: k => k with { Limits = new KeyLimits { TokensPerMinute = 100 } });
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o-mini","max_tokens":500,"messages":[{"role":"user","content":"hi"}]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.TooManyRequests, "rate_limit_exceeded", "tokens");
        Assert.Equal("100", r.Headers.GetValues("x-ratelimit-limit-tokens").Single());
        Assert.True(r.Headers.Contains("x-ratelimit-remaining-tokens"));
        Assert.True(r.Headers.Contains("x-ratelimit-reset-tokens"));
    }

    [Fact]
    public async Task Exhausted_balance_is_429_insufficient_quota_in_both_shapes()
    {
        var c = await _h.CreateCallerAsync(balance: 0m);
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.TooManyRequests, "insufficient_quota", "insufficient_quota");
        using var request = ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}""");
        request.Headers.Add("x-api-key", c.ApiKey);
        using var r2 = await _h.Http.SendAsync(request);
        await MessagesTests.AssertAnthropicError(r2, HttpStatusCode.TooManyRequests, "rate_limit_error");
        Assert.Empty(await _h.UsageEventsAsync());
    }

    [Fact]
    public async Task Spend_limit_is_429_insufficient_quota()
    {
        var c = await _h.CreateCallerAsync(key: k => k with { Limits = new KeyLimits { SpendLimit = 0.000001m } });
        using var r = await Send(c.ApiKey, """{"model":"gpt-4o","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}""");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.TooManyRequests, "insufficient_quota", "insufficient_quota");
    }

    [Fact]
    public async Task Upstream_errors_pass_through_with_the_upstreams_status_and_are_recorded()
    {
        var c = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        request.Headers.Add("x-mock-status", "400");
        using var r = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var usage = await _h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal(400, usage.Status);
        Assert.Equal(0, usage.Cost);
    }

    [Fact]
    public async Task Unknown_path_is_404_in_provider_shape()
    {
        using var r = await _h.Http.GetAsync("/v1/nothing-here");
        await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.NotFound, "unknown_url", "invalid_request_error");
    }
}
