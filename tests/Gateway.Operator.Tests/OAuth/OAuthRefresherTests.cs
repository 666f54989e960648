using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Security.Cryptography;
using Gateway.Core.Security;
using Gateway.MockUpstream;
using Gateway.Operator.OAuth;
using Gateway.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Tests.OAuth;

/// <summary>The refresher on the file source: crash recovery of an accepted pair, backoff, and a new sign-in clearing a failure.</summary>
public sealed class OAuthRefresherTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private MockUpstreamServer _mock = null!;
    private OAuthRedisKeys _keys = null!;
    private readonly CredentialProtector _ring = new(new Dictionary<string, byte[]> { ["k1"] = RandomNumberGenerator.GetBytes(32) }, "k1");

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _mock = await OAuthManifests.StartMockAsync(accessTokenLifetimeSeconds: 3600);
        _keys = new OAuthRedisKeys(_f.Keys);
    }

    public async Task DisposeAsync()
    {
        await _mock.DisposeAsync();
        await _f.DisposeAsync();
    }

    private OAuthRefresher Refresher(TimeProvider time, OAuthRefreshOptions? options = null) => new(
        new FileOAuthAccounts(_f.Source, _f.Driver),
        new OAuthTokenClient(new HttpClient()),
        new OAuthRefreshLease(_f.Redis, _keys),
        new OAuthPendingTokens(_f.Redis, _keys, _ring),
        new OAuthStateStore(_f.Redis, _keys),
        Options.Create(options ?? new OAuthRefreshOptions { MinBackoff = TimeSpan.FromSeconds(10), MaxBackoff = TimeSpan.FromSeconds(60) }),
        time,
        new OAuthRefresherIdentity("test"),
        NullLogger<OAuthRefresher>.Instance);

    private void WriteAccount(string name, string authJson, string tokenUrl)
    {
        _f.WriteManifest(name + ".yaml", OAuthManifests.Secret(name + "-auth", authJson) + "\n---\n" +
            OAuthManifests.Account(name, name + "-auth", _mock, "5m").Replace(_mock.TokenUrl.ToString(), tokenUrl, StringComparison.Ordinal));
    }

    private JsonObject AuthInFile(string name) =>
        (JsonObject)JsonNode.Parse(Encoding.UTF8.GetString(_f.Source.Load().Secrets["default/" + name + "-auth"]["auth.json"]))!;

    private async Task<string> RefreshAtMockAsync(string refreshToken)
    {
        using var http = new HttpClient();
        using var r = await http.PostAsync(_mock.TokenUrl, new FormUrlEncodedContent([new("grant_type", "refresh_token"), new("refresh_token", refreshToken), new("client_id", OAuthManifests.ClientId)]));
        r.EnsureSuccessStatusCode();
        return await r.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task A_pair_accepted_before_a_crash_is_written_to_the_Secret_instead_of_refreshing_again()
    {
        var t0 = await _mock.SignInAsync("crash");
        // The access token expires within refreshBefore: a refresh is due.
        WriteAccount("crash", OAuthManifests.AuthJson(t0, DateTimeOffset.UtcNow.AddSeconds(-3590)), _mock.TokenUrl.ToString());
        await _f.Driver.PassAsync(CancellationToken.None);

        // A previous leader refreshed, persisted the new pair, and died before writing the Secret.
        var answer = JsonNode.Parse(await RefreshAtMockAsync(t0.RefreshToken))!;
        var newRefresh = answer["refresh_token"]!.GetValue<string>();
        var auth = OAuthAuthFile.Find(_f.Source.Load().Secrets["default/crash-auth"])!;
        var json = auth.WithTokens(answer["access_token"]!.GetValue<string>(), newRefresh, null, DateTimeOffset.UtcNow.AddHours(1), DateTimeOffset.UtcNow);
        await new OAuthPendingTokens(_f.Redis, _keys, _ring).SaveAsync("default/crash", new PendingTokens("auth.json", Encoding.UTF8.GetString(json),
            OAuthAuthFile.Fingerprint(t0.RefreshToken), OAuthAuthFile.Fingerprint(newRefresh), DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddHours(1)), CancellationToken.None);

        // Redis holds the pending pair encrypted.
        var raw = (await _f.Redis.ExecuteAsync("GET", [_keys.Pending("default/crash")])).AsString()!;
        Assert.DoesNotContain(newRefresh, raw, StringComparison.Ordinal);
        Assert.DoesNotContain(answer["access_token"]!.GetValue<string>(), raw, StringComparison.Ordinal);

        await Refresher(TimeProvider.System).PassAsync(CancellationToken.None);

        // The pending pair went to the Secret; the used refresh token was not presented again.
        Assert.Equal(newRefresh, AuthInFile("crash")["refresh_token"]!.GetValue<string>());
        var stats = await _mock.GetOAuthStatsAsync("crash");
        Assert.Equal(1, stats.Refreshes);
        Assert.Equal(0, stats.InvalidGrants);
        Assert.Equal(newRefresh, stats.CurrentRefreshToken);
        Assert.Equal(0, (await _f.Redis.ExecuteAsync("EXISTS", [_keys.Pending("default/crash")])).AsInt64());
        Assert.Equal(0, (await _f.Redis.ExecuteAsync("EXISTS", [_keys.Lease("default/crash")])).AsInt64());
        var state = await new OAuthStateStore(_f.Redis, _keys).GetAsync("default/crash", CancellationToken.None);
        Assert.NotNull(state.LastRefreshAt);
    }

    [Fact]
    public async Task A_pending_pair_is_dropped_when_a_person_put_other_tokens_in_the_Secret()
    {
        var t0 = await _mock.SignInAsync("superseded");
        WriteAccount("superseded", OAuthManifests.AuthJson(t0, DateTimeOffset.UtcNow.AddSeconds(-3590)), _mock.TokenUrl.ToString());
        await _f.Driver.PassAsync(CancellationToken.None);
        // A pair left over from tokens that are no longer in the Secret (someone signed in again since).
        await new OAuthPendingTokens(_f.Redis, _keys, _ring).SaveAsync("default/superseded", new PendingTokens("auth.json", "{\"access_token\":\"stale\"}",
            OAuthAuthFile.Fingerprint("an-older-refresh-token"), OAuthAuthFile.Fingerprint("its-successor"), DateTimeOffset.UtcNow, null), CancellationToken.None);
        var refresher = Refresher(TimeProvider.System);

        await refresher.PassAsync(CancellationToken.None);
        Assert.Equal(t0.RefreshToken, AuthInFile("superseded")["refresh_token"]!.GetValue<string>());
        Assert.Equal(0, (await _f.Redis.ExecuteAsync("EXISTS", [_keys.Pending("default/superseded")])).AsInt64());

        // The Secret's own tokens are refreshed as usual afterwards.
        await refresher.PassAsync(CancellationToken.None);
        var stats = await _mock.GetOAuthStatsAsync("superseded");
        Assert.Equal(1, stats.Refreshes);
        Assert.Equal(stats.CurrentRefreshToken, AuthInFile("superseded")["refresh_token"]!.GetValue<string>());
    }

    [Fact]
    public async Task Two_refreshers_running_at_once_never_present_the_same_refresh_token_twice()
    {
        // As during a leader hand-over with a stale leader still running: two refreshers, one account, and a
        // refreshBefore longer than the token lifetime so that every pass finds a refresh due.
        var t0 = await _mock.SignInAsync("split");
        WriteAccount("split", OAuthManifests.AuthJson(t0, DateTimeOffset.UtcNow), _mock.TokenUrl.ToString());
        _f.WriteManifest("split.yaml", File.ReadAllText(Path.Combine(_f.Folder, "split.yaml")).Replace("refreshBefore: 5m", "refreshBefore: 2h", StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        var a = Refresher(TimeProvider.System);
        var b = Refresher(TimeProvider.System);

        for (var round = 0; round < 10; round++)
            await Task.WhenAll(Task.Run(() => a.PassAsync(CancellationToken.None)), Task.Run(() => b.PassAsync(CancellationToken.None)));

        var stats = await _mock.GetOAuthStatsAsync("split");
        Assert.True(stats.Refreshes >= 10, $"{stats.Refreshes} refreshes");
        Assert.Equal(0, stats.InvalidGrants);
        Assert.Equal(stats.CurrentRefreshToken, AuthInFile("split")["refresh_token"]!.GetValue<string>());
    }

    [Fact]
    public async Task Failed_refreshes_back_off_exponentially_and_the_reconciler_reports_them()
    {
        var t0 = await _mock.SignInAsync("backoff");
        // A client id the provider does not know: every refresh is refused with invalid_client.
        WriteAccount("backoff", OAuthManifests.AuthJson(t0, DateTimeOffset.UtcNow.AddSeconds(-3590)), _mock.TokenUrl.ToString());
        _f.WriteManifest("backoff.yaml", File.ReadAllText(Path.Combine(_f.Folder, "backoff.yaml")).Replace(OAuthManifests.ClientId, "unknown-client", StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        var time = new AdvanceableTimeProvider();
        var refresher = Refresher(time);
        var states = new OAuthStateStore(_f.Redis, _keys);

        await refresher.PassAsync(CancellationToken.None);
        var first = await states.GetAsync("default/backoff", CancellationToken.None);
        Assert.Equal(1, first.Attempts);
        Assert.Equal("invalid_client", first.Failure!.Error);
        Assert.True(first.Failure.Rejected);
        AssertWithin(first.NextAttemptAt!.Value - time.GetUtcNow(), TimeSpan.FromSeconds(10));

        // Inside the backoff nothing is tried.
        await refresher.PassAsync(CancellationToken.None);
        Assert.Equal(1, (await states.GetAsync("default/backoff", CancellationToken.None)).Attempts);

        // After it, the next failure waits twice as long, then four times.
        time.Advance(TimeSpan.FromSeconds(12));
        await refresher.PassAsync(CancellationToken.None);
        var second = await states.GetAsync("default/backoff", CancellationToken.None);
        Assert.Equal(2, second.Attempts);
        AssertWithin(second.NextAttemptAt!.Value - time.GetUtcNow(), TimeSpan.FromSeconds(20));
        time.Advance(TimeSpan.FromSeconds(23));
        await refresher.PassAsync(CancellationToken.None);
        var third = await states.GetAsync("default/backoff", CancellationToken.None);
        Assert.Equal(3, third.Attempts);
        AssertWithin(third.NextAttemptAt!.Value - time.GetUtcNow(), TimeSpan.FromSeconds(40));

        // The reconciler (with the state store) reports the refusal and keeps the account out of the projection.
        var reconciler = new Gateway.Operator.Reconcilers.TokenGateReconciler(_f.DbFactory, _f.Projection, _f.Hasher,
            Options.Create(new Gateway.Operator.Reconcilers.OperatorOptions()), TimeProvider.System,
            NullLogger<Gateway.Operator.Reconcilers.TokenGateReconciler>.Instance, null, states);
        var ua = _f.Source.Load().UpstreamAccounts.Single(a => a.Metadata.Name == "backoff");
        var (projection, status) = await reconciler.ReconcileUpstreamAsync(ua, _f.Source, CancellationToken.None);
        Assert.Null(projection);
        var credentials = status.Conditions.Single(c => c.Type == "CredentialsValid");
        Assert.Equal("False", credentials.Status);
        Assert.Equal("RefreshRejected", credentials.Reason);
        Assert.Contains("invalid_client", credentials.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(t0.RefreshToken, credentials.Message, StringComparison.Ordinal);

        // Signing in again (new tokens in the Secret) clears the failure at once: no backoff for the new token.
        var t1 = await _mock.SignInAsync("backoff");
        _f.WriteManifest("backoff.yaml", File.ReadAllText(Path.Combine(_f.Folder, "backoff.yaml"))
            .Replace(t0.RefreshToken, t1.RefreshToken, StringComparison.Ordinal).Replace(t0.AccessToken, t1.AccessToken, StringComparison.Ordinal)
            .Replace("unknown-client", OAuthManifests.ClientId, StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        await refresher.PassAsync(CancellationToken.None);
        var after = await states.GetAsync("default/backoff", CancellationToken.None);
        Assert.Null(after.Failure);
        Assert.Equal(1, (await _mock.GetOAuthStatsAsync("backoff")).Refreshes);
        (projection, status) = await reconciler.ReconcileUpstreamAsync(_f.Source.Load().UpstreamAccounts.Single(a => a.Metadata.Name == "backoff"), _f.Source, CancellationToken.None);
        Assert.NotNull(projection);
        Assert.Equal("True", status.Conditions.Single(c => c.Type == "CredentialsValid").Status);
        Assert.Equal(AuthInFile("backoff")["access_token"]!.GetValue<string>(), projection.Credential);
    }

    // Backoff carries ±10 % jitter.
    private static void AssertWithin(TimeSpan actual, TimeSpan expected) =>
        Assert.True(actual >= expected * 0.89 && actual <= expected * 1.11, string.Create(CultureInfo.InvariantCulture, $"expected about {expected}, got {actual}"));
}
