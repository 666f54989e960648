using System.Net;
using System.Text;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class FaultInjectionTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""";
    private const string StreamingChat = """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}""";

    [Theory]
    [InlineData(400, "invalid_request_error")]
    [InlineData(429, "requests")]
    [InlineData(500, "server_error")]
    [InlineData(503, "server_error")]
    public async Task Injected_status_replies_with_an_openai_error(int status, string type)
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-mock-status", status.ToString(System.Globalization.CultureInfo.InvariantCulture))));

        Assert.Equal((HttpStatusCode)status, response.StatusCode);
        var error = (await MockHttp.JsonAsync(response)).GetProperty("error");
        Assert.Equal(type, error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
        Assert.True(error.TryGetProperty("param", out _));
        Assert.True(error.TryGetProperty("code", out _));
        if (status == 429) Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
        else Assert.Null(response.Headers.RetryAfter);
    }

    [Fact]
    public async Task Injected_status_applies_to_stream_requests_before_any_event()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", StreamingChat, ("x-mock-status", "429")));
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Drop_fault_aborts_the_connection_without_a_response()
    {
        var ex = await Assert.ThrowsAsync<HttpRequestException>(() =>
            mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-mock-fault", "drop"))));
        Assert.Null(ex.StatusCode);
    }

    [Fact]
    public async Task Cut_fault_on_a_json_reply_sends_headers_then_a_truncated_body()
    {
        using var response = await mock.Client.SendAsync(
            MockHttp.Post("/v1/chat/completions", Chat, ("x-mock-fault", "cut")), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var declared = response.Content.Headers.ContentLength;

        await using var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        await Assert.ThrowsAnyAsync<IOException>(() => stream.CopyToAsync(received));
        Assert.InRange(received.Length, 1, declared!.Value - 1);
        Assert.StartsWith("{\"id\":", Encoding.UTF8.GetString(received.ToArray()), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cut_fault_on_a_stream_delivers_two_events_then_breaks_the_stream()
    {
        using var response = await mock.Client.SendAsync(
            MockHttp.Post("/v1/chat/completions", StreamingChat, ("x-mock-fault", "cut")), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        await using var stream = await response.Content.ReadAsStreamAsync();
        var received = new MemoryStream();
        var buffer = new byte[4096];
        await Assert.ThrowsAnyAsync<IOException>(async () =>
        {
            int n;
            while ((n = await stream.ReadAsync(buffer)) > 0) received.Write(buffer, 0, n);
        });
        var events = SseEvent.Parse(Encoding.UTF8.GetString(received.ToArray()));
        Assert.Equal(2, events.Count);
        Assert.DoesNotContain(events, e => e.Data == "[DONE]");
    }

    [Fact]
    public async Task Latency_holds_the_response_back_until_the_client_gives_up()
    {
        using var impatient = mock.Server.CreateClient();
        impatient.Timeout = TimeSpan.FromMilliseconds(300);
        await Assert.ThrowsAsync<TaskCanceledException>(() =>
            impatient.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-mock-latency-ms", "30000"))));

        using var patient = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-mock-latency-ms", "20")));
        Assert.Equal(HttpStatusCode.OK, patient.StatusCode);
    }

    [Fact]
    public async Task Split_events_arrive_in_reads_that_end_mid_json_and_still_reassemble()
    {
        using var response = await mock.Client.SendAsync(
            MockHttp.Post("/v1/chat/completions", StreamingChat, ("x-mock-split-events", "1"), ("x-mock-chunk-delay-ms", "15"), ("x-mock-output-tokens", "3")),
            HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        var reads = new List<string>();
        var buffer = new byte[65536];
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0) reads.Add(Encoding.UTF8.GetString(buffer, 0, n));

        // Some read ended inside an event's JSON: the client saw "data: {..." without the rest.
        Assert.Contains(reads, r => r.Contains("data: {", StringComparison.Ordinal) && !r.EndsWith("\n\n", StringComparison.Ordinal));
        var events = SseEvent.Parse(string.Concat(reads));
        Assert.Equal("[DONE]", events[^1].Data);
        var usage = events[^2].Json.GetProperty("usage");
        Assert.Equal(MockTokenizer.Count("Hello"), usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(3 + 3, events.Count - 1); // role, 3 tokens, finish, usage
    }

    [Fact]
    public async Task Split_events_apply_to_anthropic_streams_too()
    {
        using var response = await mock.Client.SendAsync(
            MockHttp.Post("/v1/messages", """{"model":"claude-sonnet-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hi"}]}""",
                ("x-mock-split-events", "1"), ("x-mock-output-tokens", "2")));
        var events = await SseEvent.ReadAllAsync(response);
        Assert.Equal(["message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
            "content_block_stop", "message_delta", "message_stop"], events.Select(e => e.Event));
        Assert.Equal(2, events[^2].Json.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Cut_fault_over_http2_resets_only_its_stream()
    {
        await using var h2 = await global::Gateway.MockUpstream.MockUpstreamServer.StartAsync([new("Kestrel:EndpointDefaults:Protocols", "Http2")]);
        using var client = h2.CreateClient();
        static HttpRequestMessage H2(HttpRequestMessage request)
        {
            request.Version = HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            return request;
        }

        using var response = await client.SendAsync(
            H2(MockHttp.Post("/v1/chat/completions", StreamingChat, ("x-mock-fault", "cut"))), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpVersion.Version20, response.Version);
        await using (var stream = await response.Content.ReadAsStreamAsync())
            await Assert.ThrowsAnyAsync<IOException>(() => stream.CopyToAsync(Stream.Null));

        // The connection (and any other stream on it) survives.
        using var next = await client.SendAsync(H2(MockHttp.Post("/v1/chat/completions", Chat)));
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(HttpVersion.Version20, next.Version);
    }
}
