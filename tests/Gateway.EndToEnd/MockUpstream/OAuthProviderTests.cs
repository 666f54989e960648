using System.Net;
using System.Text.Json;
using Gateway.MockUpstream;
using Gateway.Testing;

namespace Gateway.EndToEnd.MockUpstream;

/// <summary>The mock's OAuth token endpoint: rotating single-use refresh tokens, access-token expiry, revocation.</summary>
public sealed class OAuthProviderTests : IAsyncLifetime
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""";
    private const string Message = """{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"Hello"}]}""";
    private MockUpstreamServer _mock = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _mock = await MockUpstreamServer.StartAsync(
        [
            new("Mock:OAuth:RequireAccessToken", "true"),
            new("Mock:OAuth:AccessTokenLifetimeSeconds", "30"),
            new("Mock:OAuth:ClientId", "client-1"),
        ]);
        _http = MockHttp.ClientWithoutCredentials(_mock);
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _mock.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> RefreshAsync(string refreshToken, string clientId = "client-1", string grant = "refresh_token")
    {
        using var r = await _http.PostAsync("oauth/token", new FormUrlEncodedContent([new("grant_type", grant), new("refresh_token", refreshToken), new("client_id", clientId)]));
        return (r.StatusCode, await MockHttp.JsonAsync(r));
    }

    private async Task<HttpStatusCode> ChatAsync(string token)
    {
        using var r = await _http.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Bearer", token));
        return r.StatusCode;
    }

    [Fact]
    public async Task Refresh_tokens_rotate_and_a_reused_one_is_invalid_grant_and_revokes_its_family()
    {
        var first = await _mock.SignInAsync("acct");
        Assert.Equal(HttpStatusCode.OK, await ChatAsync(first.AccessToken));

        var (status, body) = await RefreshAsync(first.RefreshToken);
        Assert.Equal(HttpStatusCode.OK, status);
        var access = body.GetProperty("access_token").GetString()!;
        var refresh = body.GetProperty("refresh_token").GetString()!;
        Assert.NotEqual(first.RefreshToken, refresh);
        Assert.Equal("Bearer", body.GetProperty("token_type").GetString());
        Assert.Equal(30, body.GetProperty("expires_in").GetDouble());
        Assert.Equal(HttpStatusCode.OK, await ChatAsync(access));
        // The previous access token stays valid until it expires, as with real providers.
        Assert.Equal(HttpStatusCode.OK, await ChatAsync(first.AccessToken));

        // Presenting the used refresh token again: invalid_grant, and the family (including the new pair) dies.
        (status, body) = await RefreshAsync(first.RefreshToken);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
        Assert.Contains("already used", body.GetProperty("error_description").GetString(), StringComparison.Ordinal);
        (status, body) = await RefreshAsync(refresh);
        Assert.Equal("invalid_grant", body.GetProperty("error").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, await ChatAsync(access));

        var stats = await _mock.GetOAuthStatsAsync("acct");
        Assert.Equal(1, stats.Refreshes);
        Assert.Equal(2, stats.InvalidGrants);
        Assert.Equal(1, stats.ReusedRefreshTokens);
        Assert.Null(stats.CurrentRefreshToken);
    }

    [Fact]
    public async Task Expired_unknown_and_revoked_tokens_get_401_in_the_provider_shape()
    {
        var shortLived = await _mock.SignInAsync("short", expiresInSeconds: 0.5);
        await Eventually.TrueAsync(async () => await ChatAsync(shortLived.AccessToken) == HttpStatusCode.Unauthorized, "the access token to expire", TimeSpan.FromSeconds(30));

        using (var r = await _http.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Bearer", "mock-at-made-up")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            var error = (await MockHttp.JsonAsync(r)).GetProperty("error");
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            Assert.Contains("OAuth", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        var live = await _mock.SignInAsync("revoked");
        using (var r = await _http.SendAsync(MockHttp.Post("/v1/messages", Message, ("x-api-key", live.AccessToken))))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await _mock.RevokeAsync("revoked");
        using (var r = await _http.SendAsync(MockHttp.Post("/v1/messages", Message, ("x-api-key", live.AccessToken))))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Equal("authentication_error", (await MockHttp.JsonAsync(r)).GetProperty("error").GetProperty("type").GetString());
        }
        var (status, body) = await RefreshAsync(live.RefreshToken);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("revoked", body.GetProperty("error_description").GetString(), StringComparison.Ordinal);

        // The configured key still opens the API routes; the token endpoint checks grant type and client id.
        using (var r = await _mock.CreateClient().SendAsync(MockHttp.Post("/v1/chat/completions", Chat)))
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var fresh = await _mock.SignInAsync("client-check");
        (status, body) = await RefreshAsync(fresh.RefreshToken, clientId: "someone-else");
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.Equal("invalid_client", body.GetProperty("error").GetString());
        (status, body) = await RefreshAsync(fresh.RefreshToken, grant: "password");
        Assert.Equal("unsupported_grant_type", body.GetProperty("error").GetString());
        var stats = await _mock.GetOAuthStatsAsync("short");
        Assert.True(stats.RejectedRequests >= 1);
    }

    [Fact]
    public async Task Without_the_option_issued_tokens_are_not_required_and_the_static_key_rules_stay()
    {
        await using var plain = await MockUpstreamServer.StartAsync();
        var t = await plain.SignInAsync("acct");
        using var http = MockHttp.ClientWithoutCredentials(plain);
        // The token endpoint works, but API routes keep the Mock:ApiKey rule.
        using var r = await http.SendAsync(MockHttp.Post("/v1/chat/completions", Chat).WithAuth("Bearer", t.AccessToken));
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using var ok = await plain.CreateClient().SendAsync(MockHttp.Post("/v1/chat/completions", Chat));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }
}
