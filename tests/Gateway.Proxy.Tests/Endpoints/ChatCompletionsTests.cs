using System.ClientModel;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Core.Usage;
using Gateway.MockUpstream.Recording;
using Gateway.Proxy.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Proxy.Tests.Endpoints;

public sealed class ChatCompletionsTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync();
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private ChatClient Sdk(string key, string model = "gpt-4o-mini") =>
        new(model, new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(_h.ProxyUrl, "/v1"), NetworkTimeout = TimeSpan.FromSeconds(30), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });

    [Fact]
    public async Task Openai_sdk_chat_completion_is_forwarded_and_its_usage_recorded_exactly()
    {
        var caller = await _h.CreateCallerAsync();
        var result = await Sdk(caller.ApiKey).CompleteChatAsync([new UserChatMessage("Say hello to the gateway")]);
        var completion = result.Value;
        Assert.False(string.IsNullOrEmpty(completion.Content[0].Text));
        Assert.True(completion.Usage.InputTokenCount > 0 && completion.Usage.OutputTokenCount > 0);

        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(completion.Usage.InputTokenCount - (completion.Usage.InputTokenDetails?.CachedTokenCount ?? 0), usage.Tokens.Input);
        Assert.Equal(completion.Usage.InputTokenDetails?.CachedTokenCount ?? 0, usage.Tokens.CachedInput);
        Assert.Equal(completion.Usage.OutputTokenCount, usage.Tokens.Output);
        Assert.Equal(0, usage.Tokens.CacheWrite);
        Assert.Equal(caller.User.UserId, usage.UserId);
        Assert.Equal("gpt-4o-mini", usage.Model);
        Assert.Equal("default/mock", usage.Upstream);
        Assert.Equal("chat_completions", usage.Route);
        Assert.Equal(200, usage.Status);
        Assert.False(usage.Estimated);
        Assert.False(usage.Streamed);
        Assert.Equal("2026-11-01", usage.PriceVersion);
        // gpt-4o-mini: 0.15 in, 0.60 out per 1M tokens.
        Assert.Equal(Math.Round((usage.Tokens.Input * 0.15m + usage.Tokens.Output * 0.60m) / 1_000_000m, 8), usage.Cost);
        Assert.True(usage.Cost > 0);
    }

    [Fact]
    public async Task Openai_sdk_streaming_chat_is_forwarded_and_usage_equals_the_final_chunk()
    {
        var caller = await _h.CreateCallerAsync();
        var text = new StringBuilder();
        ChatTokenUsage? reported = null;
        await foreach (var update in Sdk(caller.ApiKey).CompleteChatStreamingAsync([new UserChatMessage("Stream a short answer please")]))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            if (update.Usage is not null) reported = update.Usage;
        }
        Assert.True(text.Length > 0);
        Assert.NotNull(reported);

        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(reported!.InputTokenCount - (reported.InputTokenDetails?.CachedTokenCount ?? 0), usage.Tokens.Input);
        Assert.Equal(reported.OutputTokenCount, usage.Tokens.Output);
        Assert.True(usage.Streamed);
        Assert.False(usage.Estimated);
        Assert.NotNull(usage.TimeToFirstByteMs);
    }

    [Fact]
    public async Task Streaming_without_include_usage_forces_it_upstream_and_drops_the_usage_chunk_for_the_client()
    {
        var caller = await _h.CreateCallerAsync();
        using var request = Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"count to five"}]}""");
        request.Headers.Add("x-mock-cached-tokens", "3");
        request.Headers.Add("x-request-id", "client-chosen-id");
        using var response = await _h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.True(response.Headers.Contains("x-tokengate-overhead-ms"));
        Assert.Equal("client-chosen-id", response.Headers.GetValues("x-request-id").Single());
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("data: [DONE]", body);
        Assert.DoesNotContain("\"prompt_tokens\"", body);

        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/chat/completions");
        Assert.Equal("client-chosen-id", upstream.Headers["x-request-id"]);
        using (var sent = JsonDocument.Parse(upstream.Body))
            Assert.True(sent.RootElement.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());

        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(3, usage.Tokens.CachedInput);
        Assert.True(usage.Tokens.Input > 0 && usage.Tokens.Output > 0);
        Assert.False(usage.Estimated);
    }

    [Fact]
    public async Task Streaming_with_include_usage_passes_the_usage_chunk_through()
    {
        var caller = await _h.CreateCallerAsync();
        using var request = Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""");
        using var response = await _h.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("\"prompt_tokens\"", body);
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/chat/completions");
        // Nothing to edit: the body went upstream byte for byte.
        Assert.Equal("""{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""", upstream.BodyText());
    }

    [Fact]
    public async Task Non_streaming_body_is_forwarded_unchanged_with_the_upstream_credential_instead_of_the_key()
    {
        var caller = await _h.CreateCallerAsync();
        const string body = """{ "model" : "gpt-4o-mini", "messages":[{"role":"user","content":"h\u00e9llo"}], "temperature": 0.5 }""";
        using var response = await _h.Http.SendAsync(Post("/v1/chat/completions", caller.ApiKey, body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/chat/completions");
        Assert.Equal(body, upstream.BodyText());
        var credential = Assert.Single(upstream.Credentials);
        Assert.Equal("authorization", credential.Header);
        Assert.Equal(RecordedRequest.HashCredential(ProxyHarness.MockCredential), credential.Sha256);
        Assert.True(response.Headers.Contains("x-request-id"));
        Assert.True(response.Headers.Contains("x-tokengate-overhead-ms"));
    }

    [Fact]
    public async Task Model_mapping_sends_the_upstream_name_and_prices_by_it()
    {
        var caller = await _h.CreateCallerAsync();
        using var response = await _h.Http.SendAsync(Post("/v1/chat/completions", caller.ApiKey, """{"model":"mapped-mini","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/chat/completions");
        Assert.Equal("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""", upstream.BodyText());
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal("mapped-mini", usage.Model);
        Assert.Equal("2026-11-01", usage.PriceVersion);
        Assert.True(usage.Cost > 0);
    }

    [Fact]
    public async Task Account_price_override_wins_and_records_its_version()
    {
        var caller = await _h.CreateCallerAsync();
        using var response = await _h.Http.SendAsync(Post("/v1/chat/completions", caller.ApiKey, """{"model":"custom-priced","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal("ua:default/mock@1", usage.PriceVersion);
        Assert.Equal(Math.Round((usage.Tokens.Input * 1m + usage.Tokens.Output * 2m) / 1_000_000m, 8), usage.Cost);
    }

    [Fact]
    public async Task Wrong_or_missing_key_gets_401_in_openai_shape()
    {
        using var wrong = await _h.Http.SendAsync(Post("/v1/chat/completions", "tg-" + new string('x', 43), """{"model":"gpt-4o-mini","messages":[]}"""));
        await AssertOpenAiError(wrong, HttpStatusCode.Unauthorized, "invalid_api_key", "invalid_request_error");
        using var foreign = await _h.Http.SendAsync(Post("/v1/chat/completions", "sk-" + new string('z', 400), """{"model":"gpt-4o-mini","messages":[]}"""));
        await AssertOpenAiError(foreign, HttpStatusCode.Unauthorized, "invalid_api_key", "invalid_request_error");
        using var missing = await _h.Http.SendAsync(Post("/v1/chat/completions", null, """{"model":"gpt-4o-mini","messages":[]}"""));
        await AssertOpenAiError(missing, HttpStatusCode.Unauthorized, "invalid_api_key", "invalid_request_error");
        Assert.True(missing.Headers.Contains("x-tokengate-overhead-ms"));
        Assert.Empty((await _h.UsageEventsAsync()));
    }

    [Fact]
    public async Task Models_lists_the_models_the_key_may_use()
    {
        var caller = await _h.CreateCallerAsync(key: k => k with { AllowedModels = ["gpt-4o*"] });
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", caller.ApiKey);
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("list", doc.RootElement.GetProperty("object").GetString());
        var ids = doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal(["gpt-4o", "gpt-4o-mini"], ids);

        var all = await _h.CreateCallerAsync();
        var client = new OpenAIClient(new ApiKeyCredential(all.ApiKey), new OpenAIClientOptions { Endpoint = new Uri(_h.ProxyUrl, "/v1") });
        var models = (await client.GetOpenAIModelClient().GetModelsAsync()).Value.Select(m => m.Id).ToList();
        Assert.Contains("text-embedding-3-small", models);
        Assert.Contains("claude-sonnet-4-5", models);
    }

    [Fact]
    public async Task Health_readiness_and_metrics_are_served()
    {
        Assert.Equal("ok", await _h.Http.GetStringAsync("/healthz"));
        Assert.Equal("ready", await _h.Http.GetStringAsync("/readyz"));
        var caller = await _h.CreateCallerAsync();
        using var response = await _h.Http.SendAsync(Post("/v1/chat/completions", caller.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"""));
        await _h.WaitForUsageAsync(caller.Key.KeyId);
        // The request counter is added when the handler returns, just after settlement wrote the usage event: wait for
        // it rather than scrape once (seen missing once under stress-ng).
        var metrics = await Gateway.Testing.Eventually.ReturnsAsync(async () => await _h.MetricsAsync() is var m && m.Contains("tokengate_proxy_requests_total{", StringComparison.Ordinal) ? m : null,
            "the request counter in /metrics");
        Assert.Contains("tokengate_proxy_requests_total{", metrics);
        Assert.Contains("route=\"chat_completions\"", metrics);
        Assert.Contains("tokengate_proxy_tokens_total{", metrics);
        Assert.Contains("tokengate_proxy_request_duration_seconds_bucket{", metrics);
        Assert.Contains("tokengate_proxy_overhead_seconds_bucket{", metrics);
        Assert.Contains("tokengate_proxy_time_to_first_token_seconds_bucket{", metrics);
        Assert.Contains("tokengate_proxy_cost_usd_total{", metrics);
        Assert.Contains("tokengate_proxy_upstream_requests_total{", metrics);
        Assert.Contains("tokengate_proxy_inflight_requests", metrics);
        Assert.DoesNotContain(caller.Key.KeyId, metrics);
        Assert.DoesNotContain(caller.User.UserId, metrics);
    }

    internal static HttpRequestMessage Post(string path, string? key, string json, string contentType = "application/json")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(Encoding.UTF8.GetBytes(json)) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        if (key is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return request;
    }

    internal static async Task<JsonElement> AssertOpenAiError(HttpResponseMessage response, HttpStatusCode status, string code, string type)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = doc.RootElement.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        return error.Clone();
    }
}
