using System.Text;
using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.MockUpstream;
using Gateway.Operator.Kubernetes;
using Gateway.Operator.Tests.Kubernetes;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Operator.Tests.OAuth;

/// <summary>
/// The OAuth refresher against an API server (fake, or real with the operator's RBAC) and the mock's token endpoint,
/// whose refresh tokens rotate, are single-use and whose reuse revokes the whole token family.
/// </summary>
public abstract class KubernetesOAuthRefreshTests : IAsyncLifetime
{
    public sealed class Fake : KubernetesOAuthRefreshTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : KubernetesOAuthRefreshTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    // Access tokens live 4 s and are refreshed 2 s ahead: a refresh about every 2 s, so a test sees many.
    private static readonly string[] FastRefresh =
    [
        "--TokenGate:OAuth:CheckInterval", "00:00:00.200",
        "--TokenGate:OAuth:MinBackoff", "00:00:00.500",
        "--TokenGate:OAuth:MaxBackoff", "00:00:02",
    ];

    private KubernetesHarness _h = null!;
    private MockUpstreamServer _mock = null!;

    public async Task InitializeAsync()
    {
        _mock = await OAuthManifests.StartMockAsync(accessTokenLifetimeSeconds: 4);
        _h = await KubernetesHarness.StartAsync(await StartClusterAsync());
    }

    public async Task DisposeAsync()
    {
        await _h.DisposeAsync();
        await _mock.DisposeAsync();
    }

    private async Task<string> CreateAccountAsync(string name, string refreshBefore, double? firstTokenLifetimeSeconds = null)
    {
        var tokens = await _mock.SignInAsync(name, firstTokenLifetimeSeconds);
        await _h.ApplyAsync(KubernetesHarness.Yaml(OAuthManifests.Secret(name + "-auth", OAuthManifests.AuthJson(tokens, DateTimeOffset.UtcNow))));
        await _h.ApplyAsync(KubernetesHarness.Yaml(OAuthManifests.Account(name, name + "-auth", _mock, refreshBefore)));
        return name;
    }

    private async Task<JsonObject> AuthInSecretAsync(string secretName)
    {
        var s = await _h.Secrets.GetAsync("default", secretName);
        return (JsonObject)JsonNode.Parse(Encoding.UTF8.GetString(s.Data!["auth.json"]))!;
    }

    private async Task<WebApplicationAndOperator> LeaderAsync()
    {
        await Eventually.TrueAsync(() => Task.FromResult(_h.Apps.Count(a => KubernetesHarness.OperatorOf(a).Manager.IsLeader) == 1), "exactly one leader");
        var app = _h.Apps.Single(a => KubernetesHarness.OperatorOf(a).Manager.IsLeader);
        return new WebApplicationAndOperator(app, KubernetesHarness.OperatorOf(app));
    }

    private sealed record WebApplicationAndOperator(Microsoft.AspNetCore.Builder.WebApplication App, KubernetesOperator Operator);

    [KubeFact]
    public async Task Two_replicas_and_a_leader_restart_never_reuse_a_refresh_token_and_the_Secret_keeps_the_latest()
    {
        var account = await CreateAccountAsync("codex-a", refreshBefore: "2s");
        await _h.StartOperatorAsync(FastRefresh);
        await _h.StartOperatorAsync(FastRefresh);

        // Several rotations under the first leader.
        await Eventually.TrueAsync(async () => (await _mock.GetOAuthStatsAsync(account)).Refreshes >= 3, "three refreshes", TimeSpan.FromSeconds(90));

        // The leader goes away mid-way (refreshes keep coming every ~2 s, one may be in flight) and comes back as a new replica.
        var first = await LeaderAsync();
        var before = (await _mock.GetOAuthStatsAsync(account)).Refreshes;
        await _h.StopAsync(first.App);
        await _h.StartOperatorAsync(FastRefresh);
        var second = await LeaderAsync();
        Assert.NotSame(first.Operator, second.Operator);
        await Eventually.TrueAsync(async () => (await _mock.GetOAuthStatsAsync(account)).Refreshes >= before + 3, "three refreshes under the new leader", TimeSpan.FromSeconds(90));

        // Stop everything: nothing is in flight any more, so the Secret must hold exactly the provider's live token.
        foreach (var app in _h.Apps.ToList()) await _h.StopAsync(app);
        var stats = await _mock.GetOAuthStatsAsync(account);
        Assert.Equal(0, stats.InvalidGrants);
        Assert.Equal(0, stats.ReusedRefreshTokens);
        Assert.False(stats.Revoked);
        var auth = await AuthInSecretAsync(account + "-auth");
        Assert.Equal(stats.CurrentRefreshToken, auth["refresh_token"]!.GetValue<string>());
        Assert.StartsWith("mock-at-", auth["access_token"]!.GetValue<string>(), StringComparison.Ordinal);
        // The rest of the auth JSON is kept.
        Assert.Equal(account + "@example.com", auth["email"]!.GetValue<string>());
        Assert.NotNull(auth["last_refresh"]);

        // The status says when it was refreshed and when the token expires; no pending pair is left behind.
        var ua = (await _h.GetAsync(TokenGateResources.UpstreamAccounts, account))!;
        Assert.Equal("True", KubernetesHarness.Condition(ua, "CredentialsValid")!["status"]!.GetValue<string>());
        Assert.NotNull(ua["status"]!["lastRefreshAt"]);
        Assert.NotNull(ua["status"]!["tokenExpiresAt"]);
        Assert.Equal(0, (await _h.Redis.ExecuteAsync("EXISTS", [_h.Keys.Prefix + "oauth:{default/" + account + "}:pending"])).AsInt64());
    }

    [KubeFact]
    public async Task The_refresh_annotation_refreshes_now_and_a_revoked_token_turns_CredentialsValid_false_with_the_provider_error()
    {
        // The first access token lives an hour: only the annotation can cause the first refresh.
        var account = await CreateAccountAsync("codex-b", refreshBefore: "1s", firstTokenLifetimeSeconds: 3600);
        await _h.StartOperatorAsync(FastRefresh);
        await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, account);
        var stats0 = await _mock.GetOAuthStatsAsync(account);
        Assert.Equal(0, stats0.Refreshes);

        await _h.UpstreamAccounts.PatchAsync("default", account, new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { ["tokengate.io/refresh"] = "1" } } });
        await Eventually.TrueAsync(async () => (await _mock.GetOAuthStatsAsync(account)).Refreshes > stats0.Refreshes, "the requested refresh");
        await Eventually.TrueAsync(async () => (await AuthInSecretAsync(account + "-auth"))["refresh_token"]!.GetValue<string>() == (await _mock.GetOAuthStatsAsync(account)).CurrentRefreshToken,
            "the Secret to hold the rotated refresh token");

        // The provider revokes the account; the next (requested) refresh is refused.
        await _mock.RevokeAsync(account);
        await _h.UpstreamAccounts.PatchAsync("default", account, new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { ["tokengate.io/refresh"] = "2" } } });
        var condition = await Eventually.ReturnsAsync(async () =>
        {
            var c = KubernetesHarness.Condition(await _h.GetAsync(TokenGateResources.UpstreamAccounts, account), "CredentialsValid");
            return c?["status"]?.GetValue<string>() == "False" ? c : null;
        }, "CredentialsValid=False");
        Assert.Equal("RefreshRejected", condition["reason"]!.GetValue<string>());
        Assert.Contains("invalid_grant", condition["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("revoked", condition["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("mock-rt-", condition["message"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("mock-at-", condition["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // The account left the projection the proxy reads, and a Warning Event names the provider's error.
        await Eventually.TrueAsync(async () =>
        {
            var list = (await _h.Redis.ExecuteAsync("GET", [_h.Keys.Upstreams])).AsString() ?? "[]";
            return !list.Contains("default/" + account, StringComparison.Ordinal);
        }, "the account to leave the projection");
        await Eventually.TrueAsync(async () => (await _h.ListAsync(ResourceDefinition.Events)).Any(e =>
            e["reason"]?.GetValue<string>() == "TokenRefreshRejected" && e["message"]!.GetValue<string>().Contains("invalid_grant", StringComparison.Ordinal)), "a TokenRefreshRejected Event");
        Assert.Contains((await _h.ListAsync(ResourceDefinition.Events)), e => e["reason"]?.GetValue<string>() == "TokenRefreshed");

        // The operator's /metrics count both outcomes (bounded result label, no account, no token).
        var app = _h.Apps.Single();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        using var http = new HttpClient();
        var metrics = await http.GetStringAsync(address + "/metrics");
        Assert.Contains("tokengate_oauth_refresh_total{result=\"success\"}", metrics, StringComparison.Ordinal);
        Assert.Contains("tokengate_oauth_refresh_total{result=\"rejected\"}", metrics, StringComparison.Ordinal);
        Assert.DoesNotContain("mock-rt-", metrics, StringComparison.Ordinal);
    }
}
