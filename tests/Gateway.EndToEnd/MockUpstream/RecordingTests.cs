using System.Net;
using System.Text;
using Gateway.MockUpstream;
using Gateway.MockUpstream.Recording;

namespace Gateway.EndToEnd.MockUpstream;

// Each test starts its own mock: recording and stats are per server and tests assert exact contents.
public sealed class RecordingTests
{
    [Fact]
    public async Task Records_method_path_query_headers_and_the_exact_body_bytes()
    {
        await using var mock = await MockUpstreamServer.StartAsync();
        using var client = mock.CreateClient();
        // Non-ASCII, escapes and odd whitespace: the recording must hold the bytes as sent.
        var body = Encoding.UTF8.GetBytes("{\"model\":\"gpt-4o-mini\",  \"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo — 你好\\n\"}]}\n");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions?trace=1") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.Add("x-request-id", "req-123");
        using var response = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var recorded = Assert.Single(await mock.GetRequestsAsync());
        Assert.Equal(1, recorded.Sequence);
        Assert.Equal("POST", recorded.Method);
        Assert.Equal("/v1/chat/completions", recorded.Path);
        Assert.Equal("?trace=1", recorded.Query);
        Assert.Equal("req-123", recorded.Headers["x-request-id"]);
        Assert.Equal("application/json", recorded.Headers["content-type"]);
        Assert.Equal(body, recorded.Body);
    }

    [Fact]
    public async Task Records_credentials_only_as_sha256_hashes()
    {
        await using var mock = await MockUpstreamServer.StartAsync();
        using var client = MockHttp.ClientWithoutCredentials(mock);
        using var response = await client.SendAsync(MockHttp.Post("/v1/messages",
            """{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}""", ("x-api-key", mock.ApiKey)));
        using var rejected = await client.SendAsync(MockHttp.Post("/v1/chat/completions", "{}").WithAuth("Bearer", "sk-leaked-client-key"));

        var requests = await mock.GetRequestsAsync();
        Assert.Equal(2, requests.Count);
        var anthropicKey = requests[0].Credential("x-api-key");
        Assert.NotNull(anthropicKey);
        Assert.Equal(RecordedRequest.HashCredential("mock-upstream-key"), anthropicKey.Sha256);
        Assert.Null(requests[0].Credential("authorization"));
        Assert.DoesNotContain("x-api-key", requests[0].Headers.Keys);

        var bearer = requests[1].Credential("authorization");
        Assert.NotNull(bearer);
        Assert.Equal("Bearer", bearer.Scheme);
        Assert.Equal(RecordedRequest.HashCredential("sk-leaked-client-key"), bearer.Sha256);
        Assert.DoesNotContain("authorization", requests[1].Headers.Keys);

        var raw = await MockHttp.ClientWithoutCredentials(mock).GetStringAsync("/_mock/requests");
        Assert.DoesNotContain("mock-upstream-key", raw, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-leaked-client-key", raw, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keeps_only_the_most_recent_requests_and_clears_on_delete()
    {
        await using var mock = await MockUpstreamServer.StartAsync([new("Mock:RecordCapacity", "3")]);
        using var client = mock.CreateClient();
        for (var i = 1; i <= 5; i++)
            (await client.SendAsync(MockHttp.Post("/v1/embeddings", $$"""{"model":"e","input":"n{{i}}","dimensions":1}"""))).Dispose();

        var requests = await mock.GetRequestsAsync();
        Assert.Equal([3L, 4L, 5L], requests.Select(r => r.Sequence));
        Assert.Contains("n5", requests[^1].BodyText(), StringComparison.Ordinal);

        await mock.ClearRequestsAsync();
        Assert.Empty(await mock.GetRequestsAsync());
    }

    [Fact]
    public async Task Recording_can_be_disabled_while_stats_still_count()
    {
        await using var mock = await MockUpstreamServer.StartAsync([new("Mock:Record", "false")]);
        using var client = mock.CreateClient();
        (await client.SendAsync(MockHttp.Post("/v1/chat/completions", """{"model":"m","messages":[]}"""))).Dispose();

        Assert.Empty(await mock.GetRequestsAsync());
        var stats = await mock.GetStatsAsync();
        Assert.Equal(1, stats.Total);
        Assert.Equal(1, stats.Paths["/v1/chat/completions"]);
    }

    [Fact]
    public async Task Counts_requests_per_path_including_unknown_paths()
    {
        await using var mock = await MockUpstreamServer.StartAsync();
        using var client = mock.CreateClient();
        for (var i = 0; i < 3; i++) (await client.SendAsync(MockHttp.Post("/v1/chat/completions", """{"model":"m","messages":[]}"""))).Dispose();
        (await client.GetAsync("/v1/models")).Dispose();
        using var unknown = await client.PostAsync("/v1/nothing-here", null);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        Assert.Equal("invalid_request_error", (await MockHttp.JsonAsync(unknown)).GetProperty("error").GetProperty("type").GetString());
        (await client.GetAsync("/healthz")).Dispose();

        var stats = await mock.GetStatsAsync();
        Assert.Equal(5, stats.Total);
        Assert.Equal(3, stats.Paths["/v1/chat/completions"]);
        Assert.Equal(1, stats.Paths["/v1/models"]);
        Assert.Equal(1, stats.Paths["/v1/nothing-here"]);
        Assert.False(stats.Paths.ContainsKey("/healthz"));
        Assert.Equal("/v1/nothing-here", (await mock.GetRequestsAsync())[^1].Path);

        using var reset = await MockHttp.ClientWithoutCredentials(mock).DeleteAsync("/_mock/stats");
        Assert.Equal(0, (await mock.GetStatsAsync()).Total);
    }
}
