using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Gateway.MockUpstream.Recording;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gateway.MockUpstream;

/// <summary>
/// The mock running in-process on real Kestrel at http://127.0.0.1:{free port}, for tests.
/// Reads recorded requests and stats over HTTP, as any client of the mock would.
/// </summary>
public sealed class MockUpstreamServer : IAsyncDisposable
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);
    private readonly HttpClient _control;

    private MockUpstreamServer(WebApplication app, Uri baseAddress, string apiKey)
    {
        App = app;
        BaseAddress = baseAddress;
        ApiKey = apiKey;
        _control = new HttpClient { BaseAddress = baseAddress };
    }

    public WebApplication App { get; }

    /// <summary>http://127.0.0.1:{port}/ (no /v1).</summary>
    public Uri BaseAddress { get; }

    /// <summary>The OpenAI-style base URL, http://127.0.0.1:{port}/v1.</summary>
    public Uri OpenAIBaseUrl => new(BaseAddress, "v1");

    /// <summary>The key the mock expects (Mock:ApiKey); empty when it accepts any.</summary>
    public string ApiKey { get; }

    /// <summary>Starts a mock; <paramref name="settings"/> are configuration entries such as ("Mock:Record", "false").</summary>
    public static async Task<MockUpstreamServer> StartAsync(
        IEnumerable<KeyValuePair<string, string?>>? settings = null,
        Action<WebApplicationBuilder>? configure = null,
        CancellationToken cancellationToken = default)
    {
        var app = MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"], builder =>
        {
            if (settings is not null) builder.Configuration.AddInMemoryCollection(settings);
            configure?.Invoke(builder);
        });
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var apiKey = app.Services.GetRequiredService<MockUpstreamOptions>().ApiKey;
        return new MockUpstreamServer(app, new Uri(address.TrimEnd('/') + "/"), apiKey);
    }

    /// <summary>A client for the mock with <c>Authorization: Bearer {ApiKey}</c> set.</summary>
    public HttpClient CreateClient(HttpMessageHandler? handler = null)
    {
        var client = handler is null ? new HttpClient() : new HttpClient(handler);
        client.BaseAddress = BaseAddress;
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ApiKey.Length > 0 ? ApiKey : "any-key");
        return client;
    }

    /// <summary>GET /_mock/requests: recorded requests, oldest first.</summary>
    public async Task<IReadOnlyList<RecordedRequest>> GetRequestsAsync(CancellationToken cancellationToken = default)
    {
        var result = await _control.GetFromJsonAsync<RecordedRequests>("_mock/requests", s_json, cancellationToken);
        return result?.Requests ?? [];
    }

    /// <summary>DELETE /_mock/requests.</summary>
    public async Task ClearRequestsAsync(CancellationToken cancellationToken = default) =>
        (await _control.DeleteAsync("_mock/requests", cancellationToken)).EnsureSuccessStatusCode();

    /// <summary>GET /_mock/stats.</summary>
    public async Task<StatsSnapshot> GetStatsAsync(CancellationToken cancellationToken = default) =>
        await _control.GetFromJsonAsync<StatsSnapshot>("_mock/stats", s_json, cancellationToken)
        ?? throw new InvalidOperationException("GET /_mock/stats returned no body.");

    /// <summary>The OAuth token endpoint, http://127.0.0.1:{port}/oauth/token.</summary>
    public Uri TokenUrl => new(BaseAddress, "oauth/token");

    /// <summary>POST /_mock/oauth/accounts/{account}: signs an account in (a new token family) and returns its first pair.</summary>
    public async Task<OAuth.IssuedTokens> SignInAsync(string account, double? expiresInSeconds = null, CancellationToken cancellationToken = default)
    {
        var query = expiresInSeconds is { } e ? "?expiresIn=" + e.ToString(System.Globalization.CultureInfo.InvariantCulture) : "";
        using var response = await _control.PostAsync($"_mock/oauth/accounts/{Uri.EscapeDataString(account)}{query}", null, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStringAsync(cancellationToken));
        var r = doc.RootElement;
        return new OAuth.IssuedTokens(r.GetProperty("access_token").GetString()!, r.GetProperty("refresh_token").GetString()!,
            r.GetProperty("expires_in").GetDouble(), account);
    }

    /// <summary>POST /_mock/oauth/accounts/{account}/revoke: kills every refresh and access token of the account.</summary>
    public async Task RevokeAsync(string account, CancellationToken cancellationToken = default) =>
        (await _control.PostAsync($"_mock/oauth/accounts/{Uri.EscapeDataString(account)}/revoke", null, cancellationToken)).EnsureSuccessStatusCode();

    /// <summary>POST /_mock/oauth/accounts/{account}/invalidate-access: the account's access tokens stop working (401); its refresh token still works.</summary>
    public async Task InvalidateAccessTokensAsync(string account, CancellationToken cancellationToken = default) =>
        (await _control.PostAsync($"_mock/oauth/accounts/{Uri.EscapeDataString(account)}/invalidate-access", null, cancellationToken)).EnsureSuccessStatusCode();

    /// <summary>GET /_mock/oauth/accounts/{account}: refresh, invalid_grant and request counts, and the live refresh token.</summary>
    public async Task<OAuth.OAuthAccountStats> GetOAuthStatsAsync(string account, CancellationToken cancellationToken = default) =>
        await _control.GetFromJsonAsync<OAuth.OAuthAccountStats>($"_mock/oauth/accounts/{Uri.EscapeDataString(account)}", s_json, cancellationToken)
        ?? throw new InvalidOperationException("GET /_mock/oauth/accounts/{account} returned no body.");

    /// <summary>GET /_mock/oauth/accounts/{account}/tokens: every access and refresh token issued to the account.</summary>
    public async Task<IReadOnlyList<string>> GetIssuedTokensAsync(string account, CancellationToken cancellationToken = default) =>
        await _control.GetFromJsonAsync<List<string>>($"_mock/oauth/accounts/{Uri.EscapeDataString(account)}/tokens", s_json, cancellationToken)
        ?? throw new InvalidOperationException("GET /_mock/oauth/accounts/{account}/tokens returned no body.");

    public async ValueTask DisposeAsync()
    {
        _control.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
