using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class ChatCompletionsTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private const string Body = """{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hello there, how are you?"}]}""";
    private static readonly int s_input = MockTokenizer.Count("Be brief.", "Hello there, how are you?");

    [Fact]
    public async Task Replies_with_a_chat_completion_echoing_the_model_and_reporting_usage()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Body));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.NotNull(response.Content.Headers.ContentLength);
        var json = await MockHttp.JsonAsync(response);
        Assert.Equal("chat.completion", json.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("gpt-4o-mini", json.GetProperty("model").GetString());
        var choice = json.GetProperty("choices")[0];
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());

        var usage = json.GetProperty("usage");
        Assert.Equal(13, s_input); // 3 + 2 words, 3 + 5 words
        Assert.Equal(s_input, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(MockReply.DefaultOutputTokens, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(s_input + MockReply.DefaultOutputTokens, usage.GetProperty("total_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task Output_length_follows_the_header_and_is_capped_by_max_tokens()
    {
        using var longer = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Body, ("x-mock-output-tokens", "25")));
        var json = await MockHttp.JsonAsync(longer);
        Assert.Equal(MockReply.Text(25), json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(25, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        var capped = Body.Replace("\"model\"", "\"max_completion_tokens\":4,\"model\"", StringComparison.Ordinal);
        using var short1 = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", capped, ("x-mock-output-tokens", "25")));
        json = await MockHttp.JsonAsync(short1);
        Assert.Equal("This is a mock", json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("length", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(4, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Cached_tokens_are_part_of_prompt_tokens_and_reasoning_part_of_completion_tokens()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Body,
            ("x-mock-cached-tokens", "100"), ("x-mock-reasoning-tokens", "7"), ("x-mock-cache-write-tokens", "50")));
        var usage = (await MockHttp.JsonAsync(response)).GetProperty("usage");

        Assert.Equal(s_input + 100, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(100, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(MockReply.DefaultOutputTokens + 7, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(7, usage.GetProperty("completion_tokens_details").GetProperty("reasoning_tokens").GetInt32());
        Assert.Equal(s_input + 100 + MockReply.DefaultOutputTokens + 7, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task No_usage_header_omits_usage()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Body, ("x-mock-no-usage", "1")));
        var json = await MockHttp.JsonAsync(response);
        Assert.False(json.TryGetProperty("usage", out _));
        Assert.Equal(MockReply.Text(12), json.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
    }

    [Fact]
    public async Task Streams_chunks_without_usage_unless_include_usage_is_set()
    {
        var streaming = Body.Replace("\"model\"", "\"stream\":true,\"model\"", StringComparison.Ordinal);
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", streaming));

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("usage", body, StringComparison.Ordinal);
        var events = SseEvent.Parse(body);
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c.GetProperty("object").GetString()));
        Assert.All(chunks, c => Assert.Equal("gpt-4o-mini", c.GetProperty("model").GetString()));
        Assert.Single(chunks.Select(c => c.GetProperty("id").GetString()).Distinct());
        Assert.Equal("assistant", chunks[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.Equal("stop", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(MockReply.DefaultOutputTokens + 2, chunks.Count); // role, one per token, finish
        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), Concatenate(chunks));
    }

    [Fact]
    public async Task Streams_a_final_usage_chunk_with_empty_choices_when_include_usage_is_set()
    {
        var streaming = Body.Replace("\"model\"", "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"model\"", StringComparison.Ordinal);
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", streaming, ("x-mock-cached-tokens", "4")));

        var events = await SseEvent.ReadAllAsync(response);
        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        var last = chunks[^1];
        Assert.Equal(0, last.GetProperty("choices").GetArrayLength());
        var usage = last.GetProperty("usage");
        Assert.Equal(s_input + 4, usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, usage.GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(MockReply.DefaultOutputTokens, usage.GetProperty("completion_tokens").GetInt32());
        // As OpenAI does: every earlier chunk carries "usage": null.
        Assert.All(chunks[..^1], c => Assert.Equal(JsonValueKind.Null, c.GetProperty("usage").ValueKind));
        Assert.Equal("stop", chunks[^2].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), Concatenate(chunks));
    }

    [Fact]
    public async Task No_usage_header_drops_the_usage_chunk_even_with_include_usage()
    {
        var streaming = Body.Replace("\"model\"", "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"model\"", StringComparison.Ordinal);
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", streaming, ("x-mock-no-usage", "true")));
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("usage", body, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Accepts_the_route_without_the_v1_prefix()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/chat/completions", Body));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(s_input, (await MockHttp.JsonAsync(response)).GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Rejects_malformed_json_and_a_missing_model_with_openai_errors()
    {
        using var malformed = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", "{\"model\":"));
        Assert.Equal(HttpStatusCode.BadRequest, malformed.StatusCode);
        Assert.Equal("invalid_request_error", (await MockHttp.JsonAsync(malformed)).GetProperty("error").GetProperty("type").GetString());

        using var noModel = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", """{"messages":[]}"""));
        Assert.Equal(HttpStatusCode.BadRequest, noModel.StatusCode);
        Assert.Contains("model", (await MockHttp.JsonAsync(noModel)).GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    private static string Concatenate(List<JsonElement> chunks)
    {
        var text = new StringBuilder();
        foreach (var c in chunks)
        {
            if (c.GetProperty("choices").GetArrayLength() == 0) continue;
            if (c.GetProperty("choices")[0].GetProperty("delta").TryGetProperty("content", out var content)) text.Append(content.GetString());
        }
        return text.ToString();
    }
}
