using System.Net;
using System.Text;
using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using Gateway.MockUpstream.Recording;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Endpoints;

public sealed class MessagesTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync();
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private AnthropicClient Sdk(string key, string? basePath = null) => new()
    {
        ApiKey = key,
        BaseUrl = new Uri(_h.ProxyUrl, basePath ?? "/").ToString().TrimEnd('/'),
        MaxRetries = 0,
    };

    private static MessageCreateParams Params(string text) => new()
    {
        MaxTokens = 256,
        Messages = [new UserMessageParam(text)],
        Model = "claude-sonnet-4-5",
    };

    [Fact]
    public async Task Anthropic_sdk_message_is_forwarded_and_usage_recorded_exactly()
    {
        var caller = await _h.CreateCallerAsync();
        var message = await Sdk(caller.ApiKey).Messages.Create(Params("Hello Claude, through the gateway"));
        Assert.NotEmpty(message.Content);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(message.Usage.InputTokens, usage.Tokens.Input);
        Assert.Equal(message.Usage.OutputTokens, usage.Tokens.Output);
        Assert.Equal(message.Usage.CacheReadInputTokens ?? 0, usage.Tokens.CachedInput);
        Assert.Equal(message.Usage.CacheCreationInputTokens ?? 0, usage.Tokens.CacheWrite);
        Assert.Equal("messages", usage.Route);
        Assert.False(usage.Estimated);
        Assert.True(usage.Cost > 0);

        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/messages");
        var credential = Assert.Single(upstream.Credentials);
        Assert.Equal("x-api-key", credential.Header);
        Assert.Equal(RecordedRequest.HashCredential(ProxyHarness.MockCredential), credential.Sha256);
        // The SDK's own anthropic-version passes through.
        Assert.False(string.IsNullOrEmpty(upstream.Headers["anthropic-version"]));
    }

    [Fact]
    public async Task Anthropic_sdk_stream_is_forwarded_and_usage_equals_message_start_and_delta()
    {
        var caller = await _h.CreateCallerAsync();
        long input = -1, output = -1, cacheRead = -1, cacheWrite = -1;
        var text = new StringBuilder();
        await foreach (var ev in Sdk(caller.ApiKey).Messages.CreateStreaming(Params("Stream to me")))
        {
            if (ev.TryPickStart(out var start))
            {
                input = start.Message.Usage.InputTokens;
                cacheRead = start.Message.Usage.CacheReadInputTokens ?? 0;
                cacheWrite = start.Message.Usage.CacheCreationInputTokens ?? 0;
            }
            else if (ev.TryPickDelta(out var delta)) output = delta.Usage.OutputTokens;
            else if (ev.TryPickContentBlockDelta(out var block) && block.Delta.TryPickText(out var t)) text.Append(t.Text);
        }
        Assert.True(text.Length > 0);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(input, usage.Tokens.Input);
        Assert.Equal(output, usage.Tokens.Output);
        Assert.Equal(cacheRead, usage.Tokens.CachedInput);
        Assert.Equal(cacheWrite, usage.Tokens.CacheWrite);
        Assert.True(usage.Streamed);
    }

    [Fact]
    public async Task Cache_read_and_write_tokens_are_priced_separately()
    {
        var caller = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude-sonnet-4-5","max_tokens":50,"messages":[{"role":"user","content":"cache me"}]}""");
        request.Headers.Add("x-api-key", caller.ApiKey);
        request.Headers.Add("x-mock-cached-tokens", "1000");
        request.Headers.Add("x-mock-cache-write-tokens", "2000");
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal(1000, usage.Tokens.CachedInput);
        Assert.Equal(2000, usage.Tokens.CacheWrite);
        // claude-sonnet-4-5: 3.00 in, 0.30 cached, 3.75 cache write, 15.00 out.
        var expected = Math.Round((usage.Tokens.Input * 3m + 1000 * 0.30m + 2000 * 3.75m + usage.Tokens.Output * 15m) / 1_000_000m, 8);
        Assert.Equal(expected, usage.Cost);
        // A client that sent no anthropic-version gets the default upstream.
        var upstream = (await _h.MockRequestsAsync()).Last(r => r.Path == "/v1/messages");
        Assert.Equal("2023-06-01", upstream.Headers["anthropic-version"]);
    }

    [Fact]
    public async Task Count_tokens_is_forwarded_and_not_charged()
    {
        var caller = await _h.CreateCallerAsync();
        var count = await Sdk(caller.ApiKey).Messages.CountTokens(new MessageCountTokensParams
        {
            Messages = [new UserMessageParam("How many tokens?")],
            Model = "claude-sonnet-4-5",
        });
        Assert.True(count.InputTokens > 0);
        Assert.Contains(await _h.MockRequestsAsync(), r => r.Path == "/v1/messages/count_tokens");
        Assert.Empty(await _h.UsageEventsAsync());
    }

    [Fact]
    public async Task Claude_code_prefix_streams_with_real_input_tokens_in_message_start()
    {
        var caller = await _h.CreateCallerAsync();
        long startInput = -1;
        await foreach (var ev in Sdk(caller.ApiKey, "/cc").Messages.CreateStreaming(Params("Claude Code says hi")))
        {
            if (ev.TryPickStart(out var start)) startInput = start.Message.Usage.InputTokens;
        }
        var usage = await _h.WaitForUsageAsync(caller.Key.KeyId);
        Assert.Equal("cc_messages", usage.Route);
        Assert.True(startInput > 0);
        Assert.Equal(usage.Tokens.Input, startInput);
    }

    [Fact]
    public async Task Errors_on_anthropic_routes_use_anthropic_shape()
    {
        using var missing = await _h.Http.SendAsync(ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"""));
        await AssertAnthropicError(missing, HttpStatusCode.Unauthorized, "authentication_error");

        var caller = await _h.CreateCallerAsync(key: k => k with { AllowedModels = ["gpt-*"] });
        using var request = ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}""");
        request.Headers.Add("x-api-key", caller.ApiKey);
        using var forbidden = await _h.Http.SendAsync(request);
        await AssertAnthropicError(forbidden, HttpStatusCode.Forbidden, "permission_error");

        using var bad = ChatCompletionsTests.Post("/v1/messages", null, """{"model":"claude""");
        bad.Headers.Add("x-api-key", caller.ApiKey);
        using var malformed = await _h.Http.SendAsync(bad);
        await AssertAnthropicError(malformed, HttpStatusCode.BadRequest, "invalid_request_error");
    }

    internal static async Task AssertAnthropicError(HttpResponseMessage response, HttpStatusCode status, string type)
    {
        Assert.Equal(status, response.StatusCode);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", doc.RootElement.GetProperty("type").GetString());
        Assert.Equal(type, doc.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(doc.RootElement.GetProperty("error").GetProperty("message").GetString()));
    }
}
