using System.Collections.Concurrent;
using System.Net;
using Gateway.Testing;

namespace Gateway.EndToEnd.OAuth;

/// <summary>
/// Issue 10's OAuth acceptance through the proxy: access tokens that expire under steady traffic are refreshed by
/// the operator ahead of time and reach the proxy through the projection, so clients never see the expiry; a
/// revoked refresh token turns the account's CredentialsValid false and traffic moves to the other account.
/// </summary>
public sealed class OAuthRefreshTrafficTests
{
    [Fact]
    public async Task Access_tokens_expiring_under_steady_traffic_cause_no_client_visible_error()
    {
        // Tokens live 12 s and are refreshed 8 s before expiry: a refresh about every 4 s, each leaving 8 s (generous
        // on a loaded machine) for the new token to reach the proxy while the old one still works.
        await using var stack = await OAuthStack.StartAsync(accessTokenLifetimeSeconds: 12);
        await stack.AddOAuthAccountAsync("sub-a", refreshBefore: "8s");
        var key = await stack.KeyAsync();
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl };
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            return r.StatusCode == HttpStatusCode.OK;
        }, "the proxy to serve through the OAuth account");
        var start = await stack.OAuthMock.GetOAuthStatsAsync("sub-a");

        // Two clients send requests back to back until the token has been rotated three times (> one lifetime).
        var failures = new ConcurrentBag<string>();
        var sent = 0;
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var r = await http.SendAsync(OAuthStack.Chat(key));
                Interlocked.Increment(ref sent);
                if (r.StatusCode != HttpStatusCode.OK) failures.Add($"{(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
            }
        })).ToArray();
        try
        {
            await Eventually.TrueAsync(async () => (await stack.OAuthMock.GetOAuthStatsAsync("sub-a")).Refreshes >= start.Refreshes + 3,
                "three refreshes under traffic", TimeSpan.FromSeconds(120));
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(clients);
        }

        var end = await stack.OAuthMock.GetOAuthStatsAsync("sub-a");
        Assert.Empty(failures);
        Assert.True(sent > 0);
        // Every request the upstream saw carried a live token, and no refresh token was ever presented twice.
        Assert.Equal(start.RejectedRequests, end.RejectedRequests);
        Assert.True(end.Requests - start.Requests >= sent, $"the OAuth account served {end.Requests - start.Requests} of {sent} requests");
        Assert.Equal(0, end.InvalidGrants);
        var status = stack.Status("sub-a")!;
        Assert.NotNull(status.LastRefreshAt);
        Assert.True(status.TokenExpiresAt > status.LastRefreshAt);
    }

    [Fact]
    public async Task A_revoked_refresh_token_turns_CredentialsValid_false_and_traffic_moves_to_the_other_account()
    {
        await using var stack = await OAuthStack.StartAsync(accessTokenLifetimeSeconds: 6);
        await stack.AddOAuthAccountAsync("sub-b", refreshBefore: "3s", priority: 0);
        await stack.AddPlainAccountAsync("fallback", priority: 1);
        var key = await stack.KeyAsync();
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl };

        // The OAuth account is the first tier: it serves.
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            return r.StatusCode == HttpStatusCode.OK && (await stack.OAuthMock.GetOAuthStatsAsync("sub-b")).Requests > 0;
        }, "the OAuth account to serve");

        // The provider revokes the account: the next refresh (at most 3 s away) is refused.
        await stack.OAuthMock.RevokeAsync("sub-b");
        var status = await Eventually.ReturnsAsync(() =>
        {
            var s = stack.Status("sub-b");
            var c = s?.Conditions.FirstOrDefault(c => c.Type == "CredentialsValid");
            return Task.FromResult(c?.Status == "False" ? s : null);
        }, "CredentialsValid=False");
        var credentials = status.Conditions.Single(c => c.Type == "CredentialsValid");
        Assert.Equal("RefreshRejected", credentials.Reason);
        Assert.Contains("invalid_grant", credentials.Message, StringComparison.Ordinal);
        Assert.Equal("False", status.Conditions.Single(c => c.Type == "Ready").Status);

        // From now on every request goes to the other account, and succeeds.
        var oauthRequests = (await stack.OAuthMock.GetOAuthStatsAsync("sub-b")).Requests;
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            return r.StatusCode == HttpStatusCode.OK;
        }, "the proxy to serve through the fallback account");
        var before = await ChatCountAsync(stack);
        for (var i = 0; i < 10; i++)
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        Assert.Equal(before + 10, await ChatCountAsync(stack));
        Assert.Equal(oauthRequests, (await stack.OAuthMock.GetOAuthStatsAsync("sub-b")).Requests);
        Assert.True((await stack.OAuthMock.GetOAuthStatsAsync("sub-b")).InvalidGrants >= 1);
    }

    [Fact]
    public async Task A_token_the_upstream_rejects_early_is_refreshed_at_once_and_the_client_never_sees_the_401()
    {
        // Tokens live an hour, refreshed 5 minutes ahead: nothing is due when the provider invalidates them.
        await using var stack = await OAuthStack.StartAsync(3600, "--TokenGate:Proxy:CooldownSeconds", "2");
        await stack.AddOAuthAccountAsync("sub-c", refreshBefore: "5m", priority: 0);
        await stack.AddPlainAccountAsync("fallback", priority: 1);
        var key = await stack.KeyAsync();
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl };
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            return r.StatusCode == HttpStatusCode.OK && (await stack.OAuthMock.GetOAuthStatsAsync("sub-c")).Requests > 0;
        }, "the OAuth account to serve");
        var before = await stack.OAuthMock.GetOAuthStatsAsync("sub-c");

        // The provider invalidates the access token long before its expiry.
        await stack.OAuthMock.InvalidateAccessTokensAsync("sub-c");
        for (var i = 0; i < 5; i++)
        {
            // Every request succeeds: the 401 is retried on the other account before any byte reached the client.
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // The proxy asked for a refresh; the operator refreshed at once, and the account serves again with the new token.
        await Eventually.TrueAsync(async () => (await stack.OAuthMock.GetOAuthStatsAsync("sub-c")).Refreshes > before.Refreshes,
            "the operator to refresh the rejected token");
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(key));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            return (await stack.OAuthMock.GetOAuthStatsAsync("sub-c")).Requests > before.Requests;
        }, "the OAuth account to serve again with the refreshed token");
        var after = await stack.OAuthMock.GetOAuthStatsAsync("sub-c");
        Assert.Equal(0, after.InvalidGrants);
        Assert.Equal(0, after.ReusedRefreshTokens);
    }

    private static async Task<long> ChatCountAsync(OAuthStack stack) =>
        (await stack.PlainMock.GetStatsAsync()).Paths.GetValueOrDefault("/v1/chat/completions");
}
