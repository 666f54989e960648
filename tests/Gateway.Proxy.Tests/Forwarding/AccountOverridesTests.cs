using System.Net;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Forwarding;

/// <summary>An UpstreamAccount's headers and paths reach the upstream (issue #10, item 4).</summary>
public sealed class AccountOverridesTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Account_headers_replace_the_clients_and_path_overrides_move_the_route()
    {
        // The base URL is the mock's root: only the path override makes /chat/completions land on /v1/chat/completions.
        var account = _h.MockUpstream("default/codex") with
        {
            BaseUrl = _h.MockUrl.ToString().TrimEnd('/'),
            Headers = new() { ["ChatGPT-Account-Id"] = "acct-42", ["x-client-thing"] = "from-account" },
            Paths = new() { ["/chat/completions"] = "/v1/chat/completions" },
        };
        await _h.Projection.PutUpstreamsAsync(account);
        var c = await _h.CreateCallerAsync();
        var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("x-client-thing", "from-client");
        request.Headers.Add("x-other", "kept");
        using var response = await _h.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var seen = (await _h.MockRequestsAsync()).Last();
        Assert.Equal("/v1/chat/completions", seen.Path);
        Assert.Equal("acct-42", seen.Headers["chatgpt-account-id"]);
        Assert.Equal("from-account", seen.Headers["x-client-thing"]);
        Assert.Equal("kept", seen.Headers["x-other"]);
    }
}
