using System.Net;
using System.Text.Json;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class AnthropicMessagesTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private const string Body = """
        {"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"You are terse."}],
         "messages":[{"role":"user","content":[{"type":"text","text":"What is the capital of France?"}]},
                     {"role":"assistant","content":"Paris."},
                     {"role":"user","content":"And of Italy?"}]}
        """;
    private static readonly int s_input = MockTokenizer.Count("You are terse.", "What is the capital of France?", "Paris.", "And of Italy?");

    private HttpRequestMessage Messages(string body, params (string, string)[] headers)
    {
        var request = MockHttp.Post("/v1/messages", body, [("anthropic-version", "2023-06-01"), .. headers]);
        request.Headers.Authorization = null;
        request.Headers.Add("x-api-key", mock.Server.ApiKey);
        return request;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request)
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        return await client.SendAsync(request);
    }

    [Fact]
    public async Task Replies_with_a_message_and_cache_tokens_separate_from_input_tokens()
    {
        using var response = await SendAsync(Messages(Body, ("x-mock-cached-tokens", "40"), ("x-mock-cache-write-tokens", "30")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = await MockHttp.JsonAsync(response);

        Assert.Equal("message", json.GetProperty("type").GetString());
        Assert.Equal("assistant", json.GetProperty("role").GetString());
        Assert.Equal("claude-sonnet-4-5", json.GetProperty("model").GetString());
        Assert.Equal(MockReply.Text(12), json.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", json.GetProperty("stop_reason").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(s_input, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(40, usage.GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(30, usage.GetProperty("cache_creation_input_tokens").GetInt32());
        Assert.Equal(12, usage.GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Max_tokens_caps_the_reply_with_stop_reason_max_tokens()
    {
        using var response = await SendAsync(Messages(Body.Replace("1024", "3", StringComparison.Ordinal)));
        var json = await MockHttp.JsonAsync(response);
        Assert.Equal("This is a", json.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("max_tokens", json.GetProperty("stop_reason").GetString());
        Assert.Equal(3, json.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Streams_anthropic_events_in_order_with_input_usage_first_and_cumulative_output_last()
    {
        var streaming = Body.Replace("\"model\"", "\"stream\":true,\"model\"", StringComparison.Ordinal);
        using var response = await SendAsync(Messages(streaming, ("x-mock-output-tokens", "4"), ("x-mock-cached-tokens", "8"), ("x-mock-cache-write-tokens", "2")));
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = await SseEvent.ReadAllAsync(response);

        Assert.Equal(
        [
            "message_start", "content_block_start", "ping",
            "content_block_delta", "content_block_delta", "content_block_delta", "content_block_delta",
            "content_block_stop", "message_delta", "message_stop",
        ], events.Select(e => e.Event));
        Assert.All(events, e => Assert.Equal(e.Event, e.Json.GetProperty("type").GetString()));

        var start = events[0].Json.GetProperty("message");
        Assert.Equal("claude-sonnet-4-5", start.GetProperty("model").GetString());
        var startUsage = start.GetProperty("usage");
        Assert.Equal(s_input, startUsage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(8, startUsage.GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(2, startUsage.GetProperty("cache_creation_input_tokens").GetInt32());
        Assert.Equal(1, startUsage.GetProperty("output_tokens").GetInt32());

        var text = string.Concat(events.Where(e => e.Event == "content_block_delta").Select(e =>
        {
            var delta = e.Json.GetProperty("delta");
            Assert.Equal("text_delta", delta.GetProperty("type").GetString());
            return delta.GetProperty("text").GetString();
        }));
        Assert.Equal(MockReply.Text(4), text);

        var messageDelta = events[^2].Json;
        Assert.Equal("end_turn", messageDelta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(4, messageDelta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task No_usage_header_omits_usage_from_the_stream()
    {
        var streaming = Body.Replace("\"model\"", "\"stream\":true,\"model\"", StringComparison.Ordinal);
        using var response = await SendAsync(Messages(streaming, ("x-mock-no-usage", "1")));
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("usage", body, StringComparison.Ordinal);
        Assert.Contains("event: message_stop", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Counts_tokens_the_same_way_messages_report_them()
    {
        using var request = MockHttp.Post("/v1/messages/count_tokens", Body);
        using var response = await mock.Client.SendAsync(request);
        var json = await MockHttp.JsonAsync(response);
        Assert.Equal(s_input, json.GetProperty("input_tokens").GetInt32());
        Assert.Equal(s_input, MockTokenizer.Count(System.Text.Encoding.UTF8.GetBytes(Body)));
    }

    [Fact]
    public async Task Errors_use_the_anthropic_shape()
    {
        using var response = await SendAsync(Messages(Body, ("x-mock-status", "529")));
        Assert.Equal((HttpStatusCode)529, response.StatusCode);
        var json = await MockHttp.JsonAsync(response);
        Assert.Equal("error", json.GetProperty("type").GetString());
        Assert.Equal("overloaded_error", json.GetProperty("error").GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(json.GetProperty("error").GetProperty("message").GetString()));

        using var badJson = await SendAsync(Messages("[1,2]"));
        Assert.Equal(HttpStatusCode.BadRequest, badJson.StatusCode);
        Assert.Equal("invalid_request_error", (await MockHttp.JsonAsync(badJson)).GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Anthropic_version_header_is_optional()
    {
        using var request = MockHttp.Post("/v1/messages", Body);
        using var response = await mock.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JsonValueKind.Object, (await MockHttp.JsonAsync(response)).GetProperty("usage").ValueKind);
    }
}
