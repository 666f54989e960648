using System.ClientModel;
using System.Net;
using Gateway.Proxy.Tests.Infrastructure;
using OpenAI;
using OpenAI.Embeddings;

namespace Gateway.Proxy.Tests.Endpoints;

public sealed class OpenAiSurfaceTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync();
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private OpenAIClientOptions Options => new() { Endpoint = new Uri(_h.ProxyUrl, "/v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) };

    [Fact]
    public async Task Embeddings_usage_is_metered_from_prompt_tokens()
    {
        var caller = await _h.CreateCallerAsync();
        var client = new EmbeddingClient("text-embedding-3-small", new ApiKeyCredential(caller.ApiKey), Options);
        var result = await client.GenerateEmbeddingsAsync(["first text", "second text"]);
        Assert.Equal(2, result.Value.Count);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(result.Value.Usage.InputTokenCount, usage.Tokens.Input);
        Assert.Equal(0, usage.Tokens.Output);
        Assert.Equal("embeddings", usage.Route);
        Assert.Equal(Math.Round(usage.Tokens.Input * 0.02m / 1_000_000m, 8), usage.Cost);
    }

    [Fact]
    public async Task Responses_api_non_streaming_and_streaming_are_metered()
    {
        var caller = await _h.CreateCallerAsync();
        using var plain = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/responses", caller.ApiKey, """{"model":"gpt-4o-mini","input":"Say something"}"""));
        Assert.Equal(HttpStatusCode.OK, plain.StatusCode);
        using (var doc = System.Text.Json.JsonDocument.Parse(await plain.Content.ReadAsStringAsync()))
        {
            var u = doc.RootElement.GetProperty("usage");
            var first = await _h.WaitForUsageAsync(caller.Key.KeyId);
            var cached = u.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt64();
            Assert.Equal(u.GetProperty("input_tokens").GetInt64() - cached, first.Tokens.Input);
            Assert.Equal(cached, first.Tokens.CachedInput);
            Assert.Equal(u.GetProperty("output_tokens").GetInt64(), first.Tokens.Output);
            Assert.Equal("responses", first.Route);
        }

        using var request = ChatCompletionsTests.Post("/v1/responses", caller.ApiKey, """{"model":"gpt-4o-mini","input":"Stream something","stream":true}""");
        request.Headers.Add("x-mock-output-tokens", "23");
        using var streamed = await _h.Http.SendAsync(request);
        var body = await streamed.Content.ReadAsStringAsync();
        Assert.Contains("response.completed", body);
        var second = await _h.WaitForUsageAsync(caller.Key.KeyId, 2);
        Assert.Equal(23, second.Tokens.Output);
        Assert.True(second.Streamed);
        Assert.False(second.Estimated);
        // The Responses API always reports usage: nothing is edited.
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/responses");
        Assert.Equal("""{"model":"gpt-4o-mini","input":"Stream something","stream":true}""", upstream.BodyText());
    }

    [Fact]
    public async Task Legacy_completions_are_forwarded_and_metered()
    {
        var caller = await _h.CreateCallerAsync();
        using var response = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/completions", caller.ApiKey, """{"model":"gpt-4o-mini","prompt":"Once upon","max_tokens":20}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal("completions", usage.Route);
        Assert.True(usage.Tokens.Output > 0);
        Assert.False(usage.Estimated);
    }

    [Fact]
    public async Task Keys_are_accepted_from_x_api_key_and_api_key_headers()
    {
        var caller = await _h.CreateCallerAsync();
        foreach (var header in new[] { "x-api-key", "api-key" })
        {
            using var request = ChatCompletionsTests.Post("/v1/chat/completions", null, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
            request.Headers.Add(header, caller.ApiKey);
            using var response = await _h.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    [Fact]
    public async Task Missing_usage_is_estimated_and_marked()
    {
        var caller = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"tell me a story"}]}""");
        request.Headers.Add("x-mock-no-usage", "1");
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await response.Content.ReadAsStringAsync();
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Input > 0);
        Assert.True(usage.Tokens.Output > 0);
        Assert.True(usage.Cost > 0);
    }

    [Fact]
    public async Task Events_split_across_reads_still_count()
    {
        var caller = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"split"}]}""");
        request.Headers.Add("x-mock-split-events", "1");
        request.Headers.Add("x-mock-output-tokens", "37");
        using var response = await _h.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"completion_tokens\":37", body);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(37, usage.Tokens.Output);
        Assert.False(usage.Estimated);
    }

    [Fact]
    public async Task Usage_endpoint_reports_the_keys_spend_and_the_owners_balance()
    {
        var caller = await _h.CreateCallerAsync(balance: 5m, key: k => k with { Limits = new Gateway.Core.Resources.KeyLimits { SpendLimit = 2m, RequestsPerMinute = 100 } });
        using (var r = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""")))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var charged = await _h.WaitForUsageAsync(caller.Key.KeyId);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/usage");
        request.Headers.Authorization = new("Bearer", caller.ApiKey);
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var key = doc.RootElement.GetProperty("key");
        Assert.Equal(charged.Tokens.Total, key.GetProperty("tokens").GetInt64());
        Assert.Equal(100, key.GetProperty("limits").GetProperty("requests_per_minute").GetInt32());
        var balance = doc.RootElement.GetProperty("user").GetProperty("balance_usd").GetDecimal();
        Assert.True(balance < 5m && balance >= 5m - charged.Cost - 0.000001m);
    }
}
