using System.Net;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Errors;

/// <summary>
/// A Redis that answers but cannot serve yet (restarted and loading its AOF: <c>-LOADING</c>) is an unavailable
/// policy store, not a proxy crash: 503 <c>gateway_unavailable</c> in the route's provider shape, never a 500. Seen
/// as two 500s in a `make chaos` run right after Redis came back.
/// </summary>
public sealed class RedisLoadingTests
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";
    private const string Message = """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task A_loading_redis_gets_503_in_the_provider_shape()
    {
        await using var loading = new LoadingRedis();
        await using var h = await ProxyHarness.StartAsync(redis: loading.Address);
        var key = "tg-" + new string('L', 43);

        // Until the proxy's connection is up it answers 503 too; wait until Redis itself refused a command.
        await Eventually.TrueAsync(async () =>
        {
            using var r = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", key, Chat));
            return loading.Refused > 0;
        }, "the proxy to reach the loading Redis");

        var before = loading.Refused;
        using (var r = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", key, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(r, HttpStatusCode.ServiceUnavailable, "gateway_unavailable", "server_error");
        using (var m = await h.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer " + key } } }))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, m.StatusCode);
        var anthropic = ChatCompletionsTests.Post("/v1/messages", null, Message);
        anthropic.Headers.Add("x-api-key", key);
        anthropic.Headers.Add("anthropic-version", "2023-06-01");
        using (var a = await h.Http.SendAsync(anthropic))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, a.StatusCode);
            Assert.Contains("\"type\":\"error\"", await a.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.True(loading.Refused > before, "the answers came from Redis refusing the commands, not from a closed connection");
    }
}
