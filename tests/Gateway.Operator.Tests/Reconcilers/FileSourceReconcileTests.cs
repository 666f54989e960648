using System.Text;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Operator.Sources;
using Gateway.Testing;
using Gateway.Kubernetes.Runtime;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Reconcilers;

public sealed class FileSourceReconcileTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;

    public async Task InitializeAsync() => _f = await OperatorFixture.CreateAsync();

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task<string> IssuedKeyAsync(string name = "demo")
    {
        var secret = await _f.Source.GetSecretAsync("default", name + "-apikey", CancellationToken.None);
        Assert.NotNull(secret);
        return Encoding.UTF8.GetString(secret["OPENAI_API_KEY"]);
    }

    [Fact]
    public async Task Issues_the_demo_key_into_a_secret_manifest_with_sdk_variables_and_projects_it()
    {
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);

        var path = _f.Source.SecretPath("default", "demo-apikey");
        Assert.True(File.Exists(path));
        var secret = await _f.Source.GetSecretAsync("default", "demo-apikey", CancellationToken.None);
        Assert.NotNull(secret);
        Assert.Equal(["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"], secret.Keys.Order(StringComparer.Ordinal));
        var key = Encoding.UTF8.GetString(secret["OPENAI_API_KEY"]);
        Assert.True(ApiKeyFormat.IsWellFormed(key));
        Assert.Equal(key, Encoding.UTF8.GetString(secret["ANTHROPIC_API_KEY"]));
        Assert.Equal("http://127.0.0.1:8080/v1", Encoding.UTF8.GetString(secret["OPENAI_BASE_URL"]));

        // PostgreSQL holds only the peppered hash and the display prefix.
        await using var db = _f.Db();
        var version = await db.ApiKeyVersions.SingleAsync();
        Assert.Equal(_f.Hasher.Hash(key), version.KeyHash.Trim());
        Assert.Equal(key[..9], version.KeyPrefix);
        Assert.False(await db.ApiKeyVersions.AnyAsync(v => v.KeyHash.Contains(key)));

        // Redis has the policy under the hash, pointing at the owner.
        var json = (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(_f.Hasher.Hash(key))])).AsString();
        var projection = JsonSerializer.Deserialize<KeyProjection>(json!, TokenGateJson.Options)!;
        var user = await db.Users.SingleAsync();
        Assert.Equal(user.Id.ToString(), projection.UserId);
        Assert.Equal("default/demo", projection.Name);
        Assert.Equal(1, projection.Version);

        var upstreams = JsonSerializer.Deserialize<List<UpstreamProjection>>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!;
        var mock = Assert.Single(upstreams);
        // Encrypted with the active key for this account; no plaintext in Redis.
        Assert.Null(mock.Credential);
        Assert.StartsWith("v1:" + TestCredentialKeys.KeyId + ":", mock.EncryptedCredential, StringComparison.Ordinal);
        Assert.Equal("mock-upstream-key", TestCredentialKeys.Open(mock));
        Assert.Equal("http://127.0.0.1:8089/v1", mock.BaseUrl);

        var status = _f.Source.ReadStatus<ApiKeyStatus>("ApiKey", "default", "demo")!;
        Assert.True(Conditions.IsTrue(status.Conditions, "Ready"));
        Assert.Equal(key[..9], status.KeyPrefix);
        Assert.Equal(1, status.ObservedGeneration);
    }

    [Fact]
    public async Task Repeated_passes_keep_the_same_key_and_credit_each_grant_once()
    {
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        var key = await IssuedKeyAsync();
        await _f.Driver.PassAsync(CancellationToken.None);
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(key, await IssuedKeyAsync());

        await using var db = _f.Db();
        var user = await db.Users.SingleAsync();
        Assert.Equal(10m, await db.LedgerEntries.Where(e => e.UserId == user.Id).SumAsync(e => e.Amount));
        Assert.Equal(Money.ToMicrosFloor(10m), await _f.Projection.GetBalanceMicrosAsync(user.Id.ToString(), CancellationToken.None));

        // A new grant is credited once, to both the ledger and the live balance; an edited amount of an
        // already-credited grant changes nothing.
        var yaml = File.ReadAllText(Path.Combine(_f.Folder, "userquota-demo.yaml"))
            .Replace("      amount: 10", "      amount: 99", StringComparison.Ordinal)
            .Replace("      reason: Welcome credit", "      reason: Welcome credit\n    - id: bonus\n      amount: 2.5", StringComparison.Ordinal);
        _f.WriteManifest("userquota-demo.yaml", yaml);
        await _f.Driver.PassAsync(CancellationToken.None);
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(12.5m, await db.LedgerEntries.Where(e => e.UserId == user.Id).SumAsync(e => e.Amount));
        Assert.Equal(Money.ToMicrosFloor(12.5m), await _f.Projection.GetBalanceMicrosAsync(user.Id.ToString(), CancellationToken.None));
        var status = _f.Source.ReadStatus<UserQuotaStatus>("UserQuota", "default", "demo")!;
        Assert.Equal(12.5m, status.Balance);
        Assert.Equal(2, status.ObservedGeneration);
    }

    [Fact]
    public async Task A_key_given_to_another_owner_keeps_its_lifetime_spend_in_the_new_owners_shard()
    {
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        var demo = await db.Users.SingleAsync();
        var key = await db.ApiKeys.SingleAsync();
        // A new key starts with its lifetime counters present (zero) in its owner's shard.
        var life = (await _f.Redis.ExecuteAsync("HMGET", [_f.Keys.KeyLifetime(demo.Id.ToString(), key.Id.ToString()), "tokens", "spend"])).Items;
        Assert.Equal((0L, 0L), (life[0].AsInt64(), life[1].AsInt64()));
        await Gateway.Core.Usage.UsageLedgerBatch.WriteAsync(Npgsql.NpgsqlDataSource.Create(_f.Database.ConnectionString), [new Gateway.Core.Usage.UsageEvent
        {
            RequestId = "before-the-move", KeyId = key.Id.ToString(), KeyVersion = 1, UserId = demo.Id.ToString(), Upstream = "default/mock",
            Model = "gpt-4o-mini", Route = "/v1/chat/completions", Tokens = new Gateway.Core.Usage.TokenCounts(100, 0, 0, 20),
            Cost = 0.0000125m, PriceVersion = "2026-11-01", StartedAt = DateTimeOffset.UtcNow, Status = 200,
        }]);

        // Settlement counted it in Redis too (the lifetime in the owner's shard).
        await _f.Redis.ExecuteAsync("HINCRBY", [_f.Keys.KeyLifetime(demo.Id.ToString(), key.Id.ToString()), "tokens", 120]);
        await _f.Redis.ExecuteAsync("HINCRBY", [_f.Keys.KeyLifetime(demo.Id.ToString(), key.Id.ToString()), "spend", 13]);

        // The key moves to another user whose shard differs from the first's (user ids are random: eight candidates).
        for (var i = 0; i < 8; i++)
            _f.WriteManifest($"userquota-other-{i}.yaml", $$"""
                apiVersion: tokengate.io/v1alpha1
                kind: UserQuota
                metadata: { name: other-{{i}}, namespace: default }
                spec:
                  user: { name: other-{{i}}, email: other-{{i}}@example.com }
                """);
        await _f.Driver.PassAsync(CancellationToken.None);
        await using (var users = _f.Db())
        {
            var candidates = await users.Users.Where(u => u.Name.StartsWith("other-")).ToListAsync();
            var other = candidates.First(u => ProjectionKeys.ShardOf(u.Id.ToString()) != ProjectionKeys.ShardOf(demo.Id.ToString())).Name;
            _f.WriteManifest("apikey-demo.yaml", File.ReadAllText(Path.Combine(_f.Folder, "apikey-demo.yaml"))
                .Replace("  owner: demo\n", $"  owner: {other}\n", StringComparison.Ordinal));
        }
        await _f.Driver.PassAsync(CancellationToken.None);

        await using var after = _f.Db();
        var ownerId = (await after.ApiKeys.SingleAsync()).UserId;
        var newOwner = await after.Users.SingleAsync(u => u.Id == ownerId);
        Assert.NotEqual(demo.Id, newOwner.Id);
        var moved = (await _f.Redis.ExecuteAsync("HMGET", [_f.Keys.KeyLifetime(newOwner.Id.ToString(), key.Id.ToString()), "tokens", "spend"])).Items;
        Assert.Equal(120L, moved[0].AsInt64());
        Assert.Equal(13L, moved[1].AsInt64()); // 12.5 µ$ rounded up, as settlement counts it
    }

    [Fact]
    public async Task Deleting_the_manifest_revokes_the_key_everywhere()
    {
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        var key = await IssuedKeyAsync();
        var hash = _f.Hasher.Hash(key);

        _f.DeleteManifest("apikey-demo.yaml");
        await _f.Driver.PassAsync(CancellationToken.None);

        Assert.True((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(hash)])).IsNull);
        Assert.False(File.Exists(_f.Source.SecretPath("default", "demo-apikey")));
        await using var db = _f.Db();
        var v = await db.ApiKeyVersions.SingleAsync();
        Assert.NotNull(v.RevokedAt);
        Assert.NotNull((await db.ApiKeys.SingleAsync()).DeletedAt);
    }

    [Fact]
    public async Task Rotation_annotation_issues_a_new_version_and_keeps_the_old_one_for_the_grace_period()
    {
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        var oldKey = await IssuedKeyAsync();

        _f.WriteManifest("apikey-demo.yaml", File.ReadAllText(Path.Combine(_f.Folder, "apikey-demo.yaml"))
            .Replace("  namespace: default\n", "  namespace: default\n  annotations:\n    tokengate.io/rotate: \"2026-11-21T08:00\"\n", StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        var newKey = await IssuedKeyAsync();
        Assert.NotEqual(oldKey, newKey);

        var oldProjection = JsonSerializer.Deserialize<KeyProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(_f.Hasher.Hash(oldKey))])).AsString()!, TokenGateJson.Options)!;
        Assert.Equal(1, oldProjection.Version);
        Assert.NotNull(oldProjection.ValidUntil);
        Assert.InRange(oldProjection.ValidUntil!.Value, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        var newProjection = JsonSerializer.Deserialize<KeyProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(_f.Hasher.Hash(newKey))])).AsString()!, TokenGateJson.Options)!;
        Assert.Equal(2, newProjection.Version);
        Assert.Null(newProjection.ValidUntil);

        // The same annotation value does not rotate again.
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(newKey, await IssuedKeyAsync());
        var status = _f.Source.ReadStatus<ApiKeyStatus>("ApiKey", "default", "demo")!;
        Assert.Equal(2, status.CurrentVersion);
        Assert.NotNull(status.PreviousVersionExpiresAt);
    }

    [Fact]
    public async Task Dedicated_selector_and_fallback_to_shared_reach_the_user_projection()
    {
        _f.CopyRepositorySamples();
        var yaml = File.ReadAllText(Path.Combine(_f.Folder, "userquota-demo.yaml"))
            + "  dedicatedSelector:\n    matchLabels:\n      pool: team-a\n  fallbackToShared: false\n";
        _f.WriteManifest("userquota-demo.yaml", yaml);
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        var user = await db.Users.SingleAsync();
        var projection = JsonSerializer.Deserialize<UserProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.User(user.Id.ToString())])).AsString()!, TokenGateJson.Options)!;
        Assert.Equal("team-a", projection.DedicatedSelector!.MatchLabels!["pool"]);
        Assert.False(projection.FallbackToShared);

        // Omitted, fallbackToShared defaults to true.
        _f.WriteManifest("userquota-demo.yaml", yaml.Replace("  fallbackToShared: false\n", "", StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        projection = JsonSerializer.Deserialize<UserProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.User(user.Id.ToString())])).AsString()!, TokenGateJson.Options)!;
        Assert.True(projection.FallbackToShared);
        Assert.NotNull(projection.DedicatedSelector);
    }

    [Fact]
    public async Task A_key_whose_owner_is_missing_is_not_ready_and_gets_no_secret()
    {
        _f.WriteManifest("k.yaml", """
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata:
              name: orphan
              namespace: default
            spec:
              owner: nobody
            """);
        await _f.Driver.PassAsync(CancellationToken.None);
        var status = _f.Source.ReadStatus<ApiKeyStatus>("ApiKey", "default", "orphan")!;
        var ready = Conditions.Find(status.Conditions, "Ready")!;
        Assert.Equal("False", ready.Status);
        Assert.Equal("OwnerNotFound", ready.Reason);
        Assert.False(File.Exists(_f.Source.SecretPath("default", "orphan-apikey")));
    }

    [Fact]
    public async Task An_invalid_manifest_is_reported_and_the_valid_ones_still_reconcile()
    {
        _f.CopyRepositorySamples();
        _f.WriteManifest("broken.yaml", "apiVersion: tokengate.io/v1alpha1\nkind: ApiKey\nmetadata: [oops\n");
        var snap = _f.Source.Load();
        Assert.Single(snap.Errors);
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.True(ApiKeyFormat.IsWellFormed(await IssuedKeyAsync()));
    }

    [Fact]
    public async Task Upstream_with_a_missing_secret_is_not_ready_and_is_left_out_of_the_projection()
    {
        _f.WriteManifest("ua.yaml", """
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata:
              name: broken
            spec:
              provider: openai
              baseUrl: https://api.openai.com/v1
              credentials:
                apiKeySecretRef: { name: nope, key: apiKey }
              models: [{ name: gpt-4o }]
            """);
        await _f.Driver.PassAsync(CancellationToken.None);
        var status = _f.Source.ReadStatus<UpstreamAccountStatus>("UpstreamAccount", "default", "broken")!;
        Assert.Equal("SecretNotFound", Conditions.Find(status.Conditions, "CredentialsValid")!.Reason);
        var upstreams = JsonSerializer.Deserialize<List<UpstreamProjection>>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!;
        Assert.Empty(upstreams);
    }

    [Fact]
    public async Task Account_headers_and_paths_reach_the_projection_and_unsafe_ones_keep_the_account_out()
    {
        _f.CopyRepositorySamples();
        var sample = File.ReadAllText(Path.Combine(_f.Folder, "upstreamaccount-mock.yaml"));
        _f.WriteManifest("upstreamaccount-mock.yaml", sample + "  headers:\n    ChatGPT-Account-Id: acct-7\n  paths:\n    /responses: /codex/responses\n");
        await _f.Driver.PassAsync(CancellationToken.None);
        var upstream = Assert.Single(JsonSerializer.Deserialize<List<UpstreamProjection>>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!);
        Assert.Equal("acct-7", upstream.Headers!["ChatGPT-Account-Id"]);
        Assert.Equal("/codex/responses", upstream.Paths!["/responses"]);

        // A header the proxy owns (the credential) is refused with a clear condition, and the account leaves the projection.
        _f.WriteManifest("upstreamaccount-mock.yaml", sample + "  headers:\n    Authorization: Bearer smuggled\n");
        await _f.Driver.PassAsync(CancellationToken.None);
        var status = _f.Source.ReadStatus<UpstreamAccountStatus>("UpstreamAccount", "default", "mock")!;
        var ready = Conditions.Find(status.Conditions, "Ready")!;
        Assert.Equal("InvalidSpec", ready.Reason);
        Assert.Contains("Authorization", ready.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("smuggled", ready.Message, StringComparison.Ordinal);
        Assert.Empty(JsonSerializer.Deserialize<List<UpstreamProjection>>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!);
    }

    [Fact]
    public async Task Driver_picks_up_file_edits_without_a_restart()
    {
        using var cts = new CancellationTokenSource();
        var run = _f.Driver.StartAsync(cts.Token);
        try
        {
            await Gateway.Testing.Eventually.TrueAsync(() => Task.FromResult(_f.Driver.Passes >= 1), "first pass");
            _f.CopyRepositorySamples();
            var key = await Gateway.Testing.Eventually.ReturnsAsync(async () =>
            {
                var s = await _f.Source.GetSecretAsync("default", "demo-apikey", CancellationToken.None);
                return s is null ? null : Encoding.UTF8.GetString(s["OPENAI_API_KEY"]);
            }, "the demo key to be issued after the samples appear");
            Assert.True(ApiKeyFormat.IsWellFormed(key));
        }
        finally
        {
            await cts.CancelAsync();
            await _f.Driver.StopAsync(CancellationToken.None);
        }
    }
}
