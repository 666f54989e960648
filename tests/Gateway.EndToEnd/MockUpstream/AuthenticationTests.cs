using System.Net;
using Gateway.MockUpstream;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class AuthenticationTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""";
    private const string Message = """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"Hello"}]}""";

    [Fact]
    public async Task Rejects_a_request_without_credentials_in_the_openai_shape()
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        using var response = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var error = (await MockHttp.JsonAsync(response)).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Rejects_a_wrong_key_on_anthropic_routes_in_the_anthropic_shape()
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        using var response = await client.SendAsync(MockHttp.Post("/v1/messages", Message, ("x-api-key", "sk-ant-wrong")));

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        var json = await MockHttp.JsonAsync(response);
        Assert.Equal("error", json.GetProperty("type").GetString());
        Assert.Equal("authentication_error", json.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain("sk-ant-wrong", json.GetRawText(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("authorization")]
    [InlineData("x-api-key")]
    [InlineData("api-key")]
    public async Task Accepts_the_configured_key_in_any_credential_header(string header)
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        var value = header == "authorization" ? "Bearer " + mock.Server.ApiKey : mock.Server.ApiKey;
        using var response = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, (header, value)));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Rejects_a_request_when_any_presented_credential_is_wrong()
    {
        // A proxy that forwards its client's key next to the upstream key must be caught.
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-api-key", "tg-client-key")));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);

        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        using var basic = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Basic", mock.Server.ApiKey));
        Assert.Equal(HttpStatusCode.Unauthorized, basic.StatusCode);
    }

    [Fact]
    public async Task Health_and_control_endpoints_need_no_credentials()
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        Assert.Equal("ok", await client.GetStringAsync("/healthz"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/_mock/requests")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/_mock/stats")).StatusCode);
    }

    [Fact]
    public async Task An_empty_configured_key_accepts_any_non_empty_credential()
    {
        await using var open = await MockUpstreamServer.StartAsync([new("Mock:ApiKey", "")]);
        using var client = MockHttp.ClientWithoutCredentials(open);

        using var anyKey = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat, ("x-api-key", "whatever")));
        Assert.Equal(HttpStatusCode.OK, anyKey.StatusCode);
        using var none = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat));
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
    }

    [Fact]
    public async Task A_configured_key_replaces_the_default()
    {
        await using var custom = await MockUpstreamServer.StartAsync([new("Mock:ApiKey", "sk-custom-upstream")]);
        using var client = MockHttp.ClientWithoutCredentials(custom);

        using var defaultKey = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Bearer", "mock-upstream-key"));
        Assert.Equal(HttpStatusCode.Unauthorized, defaultKey.StatusCode);
        using var customKey = await client.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Bearer", "sk-custom-upstream"));
        Assert.Equal(HttpStatusCode.OK, customKey.StatusCode);
    }
}
