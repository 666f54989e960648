using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>One regression test per finding of the fuzz pass (docs/reliability.md lists them).</summary>
public sealed class FuzzFindingTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(45);
    private FuzzSetup _run = null!;
    private TestCaller _caller = null!;

    public async Task InitializeAsync()
    {
        _run = await FuzzSetup.StartAsync(64 * 1024);
        _caller = await _run.Harness.CreateCallerAsync(balance: 1_000_000m);
    }

    public async Task DisposeAsync()
    {
        await _run.DisposeAsync();
    }

    private async Task<HttpResponseMessage> PostAsync(string path, string body, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + _caller.ApiKey);
        foreach (var (n, v) in headers) request.Headers.TryAddWithoutValidation(n, v);
        return await _run.Harness.Http.SendAsync(request);
    }

    private async Task<RawResponse> RawAsync(string path, IEnumerable<string> head, byte[] body)
    {
        var request = FuzzGenerator.RawRequest("POST " + path + " HTTP/1.1",
            [$"Host: {_run.Harness.ProxyUrl.Authority}", "Authorization: Bearer " + _caller.ApiKey, "Content-Type: application/json", "Connection: close", .. head], body);
        var response = await RawHttp.SendAsync(_run.Harness.ProxyUrl, request, Deadline);
        Assert.False(response.TimedOut, "no answer in time");
        return response;
    }

    private static JsonElement Error(byte[] body, ApiDialect dialect)
    {
        Assert.Null(FuzzChecks.ShapeProblem(dialect, "application/json", body));
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("error").Clone();
    }

    [Theory]
    [InlineData("\\ud800")]
    [InlineData("\\udc00x")]
    [InlineData("\\ud83d")]
    public async Task A_model_escaping_a_lone_surrogate_is_a_400_not_a_500(string escape)
    {
        using var response = await PostAsync("/v1/chat/completions", "{\"model\":\"gpt" + escape + "\",\"messages\":[]}");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_encoding", Error(await response.Content.ReadAsByteArrayAsync(), ApiDialect.OpenAI).GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("max_tokens", "9223372036854775807")]
    [InlineData("max_completion_tokens", "9223372036854775807")]
    [InlineData("max_output_tokens", "4611686018427387904")]
    public async Task An_absurd_max_tokens_is_refused_by_the_balance_not_a_500(string field, string value)
    {
        using var response = await PostAsync("/v1/responses", $$"""{"model":"gpt-4o","input":"hi","{{field}}":{{value}}}""");
        // The reservation is capped (100M output tokens at gpt-4o's price is far below this caller's balance), so the
        // request goes through to the upstream instead of overflowing the cost.
        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, "status " + response.StatusCode);
    }

    [Fact]
    public async Task A_duplicate_model_is_refused_so_the_model_checked_and_billed_is_the_one_served()
    {
        using var response = await PostAsync("/v1/chat/completions", """{"model":"gpt-4o","messages":[],"\u006dodel":"gpt-4o-mini"}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("more than one 'model'", Error(await response.Content.ReadAsByteArrayAsync(), ApiDialect.OpenAI).GetProperty("message").GetString());
        Assert.False(_run.Witness.Drain().Exists(w => w.Path.Contains("chat", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData("x-request-id", "a\u007fb")]
    [InlineData("x-request-id", "a\u0001b")]
    public async Task A_control_byte_in_x_request_id_is_not_echoed_into_an_invalid_response(string name, string value)
    {
        var response = await RawAsync("/v1/chat/completions", [name + ": " + value, "Content-Length: 60"], Encoding.UTF8.GetBytes("""{"model":"gpt-4o-mini","messages":[],"max_tokens":8,"x":"12"}"""));
        Assert.True(response.Status is 200 or 400, "status " + response.Status);
        Assert.NotEqual(value, response.Header("x-request-id"));
    }

    [Fact]
    public async Task A_non_ASCII_header_is_a_400_and_never_counts_against_the_upstream_account()
    {
        for (var i = 0; i < 5; i++)
        {
            var response = await RawAsync("/v1/messages", ["x-note: \u00c3\u00a9t\u00c3\u00a9", "Content-Length: 67"],
                Encoding.UTF8.GetBytes("""{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[],"x":"12"}"""));
            Assert.Equal(400, response.Status);
            Assert.Equal("invalid_request_error", Error(response.Body, ApiDialect.Anthropic).GetProperty("type").GetString());
        }
        // Five such requests used to be five upstream failures, and three put the account in cooldown for everyone.
        using var ok = await PostAsync("/v1/chat/completions", """{"model":"gpt-4o-mini","messages":[],"max_tokens":8}""");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public void Headers_named_by_Connection_are_not_forwarded()
    {
        var headers = new HeaderDictionary
        {
            ["Connection"] = "keep-alive, x-hop-a",
            ["x-hop-a"] = "1",
            ["x-hop-b"] = "2",
            ["x-end"] = "3",
        };
        headers.Append("Connection", "X-Hop-B");
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://upstream/") { Content = new ByteArrayContent([]) };
        HeaderRules.CopyRequestHeaders(headers, request);
        Assert.False(request.Headers.Contains("x-hop-a"));
        Assert.False(request.Headers.Contains("x-hop-b"));
        Assert.False(request.Headers.Contains("Connection"));
        Assert.Equal("3", request.Headers.GetValues("x-end").Single());
    }

    [Theory]
    [InlineData("GET", "/v1/chat/completions", "POST", ApiDialect.OpenAI)]
    [InlineData("PUT", "/cc/v1/messages", "POST", ApiDialect.Anthropic)]
    [InlineData("DELETE", "/v1/models", "GET", ApiDialect.OpenAI)]
    public async Task The_wrong_method_on_a_known_path_is_a_provider_shaped_405(string method, string path, string allowed, ApiDialect dialect)
    {
        using var response = await _run.Harness.Http.SendAsync(new HttpRequestMessage(new HttpMethod(method), path));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(allowed, response.Content.Headers.Allow.Single());
        Error(await response.Content.ReadAsByteArrayAsync(), dialect);
    }

    [Fact]
    public async Task An_unknown_path_under_messages_answers_in_the_Anthropic_shape()
    {
        using var response = await PostAsync("/v1/messages/batches", "{}");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Error(await response.Content.ReadAsByteArrayAsync(), ApiDialect.Anthropic);
    }

    [Theory]
    [InlineData("ffffffffffffffffff")]
    [InlineData("zz")]
    [InlineData("4")]
    public async Task A_broken_chunked_body_is_a_provider_shaped_400(string size)
    {
        const string body = """{"model":"gpt-4o-mini","messages":[],"max_tokens":8}""";
        var response = await RawAsync("/v1/chat/completions", ["Transfer-Encoding: chunked"], Encoding.ASCII.GetBytes(size + "\r\n" + body + "\r\n0\r\n\r\n"));
        Assert.Equal(400, response.Status);
        Error(response.Body, ApiDialect.OpenAI);
    }
}
