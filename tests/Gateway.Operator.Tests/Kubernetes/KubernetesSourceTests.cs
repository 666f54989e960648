using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// The acceptance steps of running the operator against a cluster, each against the fake API server with
/// the committed CRDs and — when KUBEBUILDER_ASSETS is set — a real API server where the operator runs
/// under its least-privilege ServiceAccount; real PostgreSQL and real Redis, through the real host
/// (<c>--source kubernetes</c>).
/// </summary>
public abstract class KubernetesSourceTests : IAsyncLifetime
{
    private KubernetesHarness _h = null!;

    public sealed class Fake : KubernetesSourceTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : KubernetesSourceTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await StartClusterAsync());

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<string> ReadyDemoAsync()
    {
        await _h.StartOperatorAsync();
        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
        await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, "mock");
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        return await _h.IssuedKeyAsync();
    }

    private async Task<List<string?>> EventReasonsAsync(string name) =>
        [.. (await _h.ListAsync(ResourceDefinition.Events))
            .Where(e => e["involvedObject"]?["name"]?.GetValue<string>() == name)
            .Select(e => e["reason"]?.GetValue<string>())];

    [KubeFact]
    public async Task Applying_the_samples_makes_all_three_ready_and_issues_the_key_into_a_secret_owned_by_the_ApiKey()
    {
        var key = await ReadyDemoAsync();

        Assert.True(ApiKeyFormat.IsWellFormed(key));
        var ak = (await _h.GetAsync(TokenGateResources.ApiKeys, "demo"))!;
        Assert.Equal(1, ak["status"]!["observedGeneration"]!.GetValue<long>());
        Assert.Equal(key[..9], ak["status"]!["keyPrefix"]!.GetValue<string>());
        foreach (var type in new[] { TokenGateResources.ApiKeys, TokenGateResources.UserQuotas, TokenGateResources.UpstreamAccounts })
        {
            var name = type == TokenGateResources.UpstreamAccounts ? "mock" : "demo";
            Assert.Contains(TokenGateApi.Finalizer, (await _h.GetAsync(type, name))!["metadata"]!["finalizers"]!.AsArray().Select(f => f!.GetValue<string>()));
        }

        // A real Secret: Opaque, base64 data for the SDKs, controlled by the ApiKey (garbage collection deletes it with it).
        var secret = await _h.Secrets.GetAsync("default", "demo-apikey");
        Assert.Equal("Opaque", secret.Type);
        Assert.Equal(["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"], secret.Data!.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("tokengate", secret.Metadata.Labels!["app.kubernetes.io/managed-by"]);
        var owner = Assert.Single(secret.Metadata.OwnerReferences!);
        Assert.Equal(("tokengate.io/v1alpha1", "ApiKey", "demo", true), (owner.ApiVersion, owner.Kind, owner.Name, owner.Controller == true));
        Assert.Equal(ak["metadata"]!["uid"]!.GetValue<string>(), owner.Uid);

        // The HMAC is in PostgreSQL and Redis; the plaintext is only in the Secret.
        await using (var db = _h.Db())
        {
            var version = await db.ApiKeyVersions.SingleAsync();
            Assert.Equal(_h.Hasher.Hash(key), version.KeyHash.Trim());
            Assert.Null(version.RevokedAt);
        }
        Assert.True(await _h.RedisHasKeyAsync(key));
        var upstreams = JsonSerializer.Deserialize<List<UpstreamProjection>>((await _h.Redis.ExecuteAsync("GET", [_h.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!;
        Assert.Equal("mock-upstream-key", TestCredentialKeys.Open(Assert.Single(upstreams)));

        // kubectl describe shows what happened.
        await Eventually.TrueAsync(async () => await EventReasonsAsync("demo") is var r && r.Contains("KeyIssued") && r.Contains("GrantCredited"), "KeyIssued and GrantCredited events");
    }

    [KubeFact]
    public async Task Printer_columns_of_the_committed_crds_resolve_against_the_reconciled_objects()
    {
        var key = await ReadyDemoAsync();
        var expected = new Dictionary<string, Dictionary<string, string?>>
        {
            ["apikeys"] = new() { ["Owner"] = "demo", ["Prefix"] = key[..9], ["Ready"] = "True", ["Last Used"] = null, ["Spend"] = "0" },
            ["userquotas"] = new() { ["Email"] = "demo@example.com", ["Balance"] = "10", ["Spent"] = "0", ["Budget"] = "50", ["Ready"] = "True" },
            ["upstreamaccounts"] = new() { ["Provider"] = "openai-compatible", ["Models"] = "gpt-4o-mini", ["Priority"] = "0", ["Healthy"] = "Unknown", ["Expires"] = null, ["Cooldown"] = null, ["Requests Today"] = null, ["Ready"] = "True" },
        };
        foreach (var dir in new[] { Path.Combine(RepoPaths.Root, "config", "crd"), Path.Combine(RepoPaths.Root, "charts", "tokengate", "crds") })
        {
            foreach (var file in Directory.GetFiles(dir, "tokengate.io_*.yaml"))
            {
                var crd = FakeCrdSchema.ParseYaml(await File.ReadAllTextAsync(file)).Single();
                var plural = crd["spec"]!["names"]!["plural"]!.GetValue<string>();
                var type = plural switch { "apikeys" => TokenGateResources.ApiKeys, "userquotas" => TokenGateResources.UserQuotas, _ => TokenGateResources.UpstreamAccounts };
                var obj = (await _h.GetAsync(type, plural == "upstreamaccounts" ? "mock" : "demo"))!;
                var columns = crd["spec"]!["versions"]![0]!["additionalPrinterColumns"]!.AsArray();
                Assert.Equal(expected[plural].Count + 1, columns.Count);
                foreach (var column in columns)
                {
                    var name = column!["name"]!.GetValue<string>();
                    var values = JsonPath.Evaluate(obj, column["jsonPath"]!.GetValue<string>());
                    if (name == "Age")
                    {
                        Assert.NotEmpty(values);
                        continue;
                    }
                    // Like the API server's table conversion: the first match, numbers printed as numbers (10.00000000 → 10).
                    var number = column["type"]!.GetValue<string>() is "number" or "integer";
                    var shown = values.Count == 0 ? null : string.Join(',', values.Take(1).Select(v =>
                        v is JsonValue jv && jv.TryGetValue<string>(out var s) ? s
                        : number ? v!.GetValue<decimal>().ToString("0.########", System.Globalization.CultureInfo.InvariantCulture)
                        : v!.ToJsonString()));
                    // The leader's first usage-window measurement (every 15 s) may or may not have landed yet: empty or 0.
                    if (name == "Requests Today" && shown == "0") shown = null;
                    Assert.True(expected[plural][name] == shown, $"{plural} column {name}: expected '{expected[plural][name]}', got '{shown}'");
                }
            }
        }
    }

    [KubeFact]
    public async Task A_cooldown_raises_events_and_window_usage_reaches_the_status()
    {
        // The leader judges health every second here (15 s by default); the proxies' traffic is what they wrote to Redis.
        await _h.StartOperatorAsync("--TokenGate:UpstreamHealthInterval", "00:00:01");
        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, "mock");
        await UpstreamWindows.AddAndReadAsync(_h.Redis, _h.Keys, [new WindowDelta("default/mock", 7, 700)], default);
        var windows = await Eventually.ReturnsAsync(async () =>
            (await _h.GetAsync(TokenGateResources.UpstreamAccounts, "mock"))?["status"]?["requestsToday"]?.GetValue<long>() == 7
                ? (await _h.GetAsync(TokenGateResources.UpstreamAccounts, "mock"))!["status"]!["windows"]!.AsArray() : null,
            "status.requestsToday and status.windows");
        Assert.Equal(["5h", "1d", "7d"], windows.Select(w => w!["period"]!.GetValue<string>()));
        Assert.All(windows, w => Assert.Equal(700, w!["tokens"]!.GetValue<long>()));

        var until = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeMilliseconds();
        await _h.Redis.ExecuteAsync("SET", [_h.Keys.UpstreamCooldown("default/mock"), until, "PX", 600_000]);
        await Eventually.TrueAsync(async () => (await EventReasonsAsync("mock")).Contains("CoolingDown"), "a CoolingDown event");
        var healthy = KubernetesHarness.Condition(await _h.GetAsync(TokenGateResources.UpstreamAccounts, "mock"), "Healthy")!;
        Assert.Equal(("False", "CoolingDown"), (healthy["status"]!.GetValue<string>(), healthy["reason"]!.GetValue<string>()));

        await _h.Redis.ExecuteAsync("DEL", [_h.Keys.UpstreamCooldown("default/mock")]);
        await Eventually.TrueAsync(async () => (await EventReasonsAsync("mock")).Contains("CooldownEnded"), "a CooldownEnded event");
        var warning = (await _h.ListAsync(ResourceDefinition.Events)).Single(e => e["reason"]?.GetValue<string>() == "CoolingDown");
        Assert.Equal("Warning", warning["type"]!.GetValue<string>());
    }

    [KubeFact]
    public async Task Reports_InvalidSpec_for_a_base_url_that_matches_the_schema_pattern_but_is_not_a_url()
    {
        await _h.StartOperatorAsync();
        await _h.ApplyAsync(KubernetesHarness.Yaml("""
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata: { name: broken, namespace: default }
            spec:
              provider: openai
              baseUrl: "http://[not-a-host"
              credentials: { apiKeySecretRef: { name: nowhere, key: apiKey } }
              models: [ { name: gpt-4o } ]
            """));
        var ready = await Eventually.ReturnsAsync(async () => KubernetesHarness.Condition(await _h.GetAsync(TokenGateResources.UpstreamAccounts, "broken"), "Ready"), "a Ready condition");
        Assert.Equal("False", ready["status"]!.GetValue<string>());
        Assert.Equal("InvalidSpec", ready["reason"]!.GetValue<string>());
        Assert.Contains("spec.baseUrl", ready["message"]!.GetValue<string>());
        await Eventually.TrueAsync(async () => (await _h.ListAsync(ResourceDefinition.Events))
            .Any(e => e["reason"]?.GetValue<string>() == "InvalidSpec" && e["type"]?.GetValue<string>() == "Warning"), "a Warning event");
    }

    [KubeFact]
    public async Task An_ApiKey_created_before_its_owner_waits_and_is_issued_once_the_UserQuota_appears()
    {
        await _h.StartOperatorAsync();
        var samples = Directory.GetFiles(RepoPaths.Samples, "*.yaml").SelectMany(f => FakeCrdSchema.ParseYaml(File.ReadAllText(f))).ToList();
        await _h.ApplyAsync(samples.Single(d => d["kind"]!.GetValue<string>() == "ApiKey"));
        var waiting = await Eventually.ReturnsAsync(async () => KubernetesHarness.Condition(await _h.GetAsync(TokenGateResources.ApiKeys, "demo"), "Ready"), "a Ready condition");
        Assert.Equal("OwnerNotFound", waiting["reason"]!.GetValue<string>());
        Assert.Null(await _h.Secrets.TryGetAsync("default", "demo-apikey"));

        // The owner's reconcile enqueues its keys: no need to wait for the 10 s retry.
        await _h.ApplyAsync(samples.Single(d => d["kind"]!.GetValue<string>() == "UserQuota"));
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        Assert.True(await _h.RedisHasKeyAsync(await _h.IssuedKeyAsync()));
    }

    [KubeFact]
    public async Task An_UpstreamAccount_is_resolved_again_when_its_credentials_secret_appears_or_changes()
    {
        await _h.StartOperatorAsync();
        var samples = Directory.GetFiles(RepoPaths.Samples, "*.yaml").SelectMany(f => FakeCrdSchema.ParseYaml(File.ReadAllText(f))).ToList();
        await _h.ApplyAsync(samples.Single(d => d["kind"]!.GetValue<string>() == "UpstreamAccount"));
        var waiting = await Eventually.ReturnsAsync(async () => KubernetesHarness.Condition(await _h.GetAsync(TokenGateResources.UpstreamAccounts, "mock"), "Ready"), "a Ready condition");
        Assert.Equal("SecretNotFound", waiting["reason"]!.GetValue<string>());

        await _h.ApplyAsync(samples.Single(d => d["kind"]!.GetValue<string>() == "Secret"));
        await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, "mock");
        await Eventually.TrueAsync(async () => (await UpstreamCredentialAsync()) == "mock-upstream-key", "the credential in the upstream list");

        var secret = await _h.Secrets.GetAsync("default", "mock-upstream-credentials");
        secret.Data!["apiKey"] = "rotated-upstream-key"u8.ToArray();
        await _h.Secrets.UpdateAsync(secret);
        await Eventually.TrueAsync(async () => (await UpstreamCredentialAsync()) == "rotated-upstream-key", "the new credential in the upstream list");
    }

    private async Task<string?> UpstreamCredentialAsync()
    {
        var json = (await _h.Redis.ExecuteAsync("GET", [_h.Keys.Upstreams])).AsString();
        return json is null ? null : JsonSerializer.Deserialize<List<UpstreamProjection>>(json, TokenGateJson.Options)!.SingleOrDefault() is { } u ? TestCredentialKeys.Open(u) : null;
    }

    [KubeFact]
    public async Task Deleting_the_ApiKey_runs_the_finalizer_revokes_the_key_in_PostgreSQL_and_Redis_and_the_object_goes()
    {
        var key = await ReadyDemoAsync();

        await _h.ApiKeys.DeleteAsync("default", "demo");

        await Eventually.TrueAsync(async () => await _h.GetAsync(TokenGateResources.ApiKeys, "demo") is null, "the ApiKey to be gone");
        Assert.False(await _h.RedisHasKeyAsync(key));
        Assert.Null(await _h.Secrets.TryGetAsync("default", "demo-apikey"));
        await using var db = _h.Db();
        Assert.NotNull((await db.ApiKeyVersions.SingleAsync()).RevokedAt);
        Assert.NotNull((await db.ApiKeys.SingleAsync()).DeletedAt);
    }

    [KubeFact]
    public async Task Deleting_the_issued_secret_issues_a_new_key()
    {
        var first = await ReadyDemoAsync();

        await _h.Secrets.DeleteAsync("default", "demo-apikey");

        var second = await _h.IssuedKeyAsync(not: first);
        Assert.True(ApiKeyFormat.IsWellFormed(second));
        // The Secret is written before the projection: wait for Redis too.
        await Eventually.TrueAsync(() => _h.RedisHasKeyAsync(second), "the new key in Redis");
        await Eventually.TrueAsync(async () => (await _h.GetAsync(TokenGateResources.ApiKeys, "demo"))?["status"]?["currentVersion"]?.GetValue<int>() == 2, "status.currentVersion 2");
        var secret = await _h.Secrets.GetAsync("default", "demo-apikey");
        Assert.Equal("ApiKey", Assert.Single(secret.Metadata.OwnerReferences!).Kind);
    }

    [KubeFact]
    public async Task The_rotate_annotation_rotates_the_key_and_keeps_the_old_one_for_the_grace_period()
    {
        var first = await ReadyDemoAsync();

        await _h.ApiKeys.PatchAsync("default", "demo", new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [TokenGateApi.RotateAnnotation] = "now" } } });

        var second = await _h.IssuedKeyAsync(not: first);
        await Eventually.TrueAsync(() => _h.RedisHasKeyAsync(second), "the new key in Redis");
        Assert.True(await _h.RedisHasKeyAsync(first));
        var status = await Eventually.ReturnsAsync(async () => (await _h.GetAsync(TokenGateResources.ApiKeys, "demo"))?["status"] is JsonObject s && s["currentVersion"]?.GetValue<int>() == 2 ? s : null, "status.currentVersion 2");
        Assert.NotNull(status["previousVersionExpiresAt"]);
        Assert.Equal(second[..9], status["keyPrefix"]!.GetValue<string>());
        await Eventually.TrueAsync(async () => (await EventReasonsAsync("demo")).Contains("KeyRotated"), "a KeyRotated event");

        // The same annotation value again is not a new request.
        await _h.ApiKeys.PatchAsync("default", "demo", new JsonObject { ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["touched"] = "yes" } } });
        Assert.Equal(second, await _h.IssuedKeyAsync());
    }

    [KubeFact]
    public async Task Rebuilds_the_projection_when_Redis_loses_it()
    {
        var key = await ReadyDemoAsync();
        // The term's first build is complete (a loss during it is another case: the epoch is then not marked at all).
        // Seen once in 20 runs under stress-ng: the key was deleted before the first build marked the epoch, which
        // then covered the hole.
        await Eventually.TrueAsync(async () => (await _h.Redis.ExecuteAsync("EXISTS", [_h.Keys.Epoch])).AsInt64() == 1, "the first build to complete");

        // What a flushed Redis looks like for this operator (its own prefix only; never FLUSHALL here).
        await _h.Redis.ExecuteAsync("DEL", [_h.Keys.Epoch, _h.Keys.Key(_h.Hasher.Hash(key)), _h.Keys.Upstreams]);

        await Eventually.TrueAsync(async () => await _h.RedisHasKeyAsync(key), "the key projection to be rebuilt", TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(async () => (await UpstreamCredentialAsync()) == "mock-upstream-key", "the upstream list to be rebuilt");
        // Marked complete once every object has been reconciled again.
        await Eventually.TrueAsync(async () => (await _h.Redis.ExecuteAsync("EXISTS", [_h.Keys.Epoch])).AsInt64() == 1, "the epoch to be marked");
    }

    [KubeFact]
    public async Task With_a_namespace_only_that_namespace_is_reconciled_and_the_lease_lives_there()
    {
        // A single-namespace install binds the leader-election Role where the Lease then lives.
        await _h.Cluster.GrantLeaderElectionInAsync("team-a");
        var app = await _h.StartOperatorAsync("--namespace", "team-a");
        foreach (var ns in new[] { "team-a", "team-b" })
        {
            await _h.ApplyAsync(KubernetesHarness.Yaml($$"""
                apiVersion: tokengate.io/v1alpha1
                kind: UserQuota
                metadata: { name: alice, namespace: {{ns}} }
                spec: { user: { name: alice, email: alice@example.com } }
                """));
        }
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "alice", "team-a");
        var other = (await _h.GetAsync(TokenGateResources.UserQuotas, "alice", "team-b"))!;
        Assert.Null(other["status"]);
        Assert.Null(other["metadata"]!["finalizers"]);
        var lease = await _h.GetAsync(ResourceDefinition.Leases, "tokengate-operator", "team-a");
        Assert.Equal(KubernetesHarness.OperatorOf(app).Identity, lease?["spec"]?["holderIdentity"]?.GetValue<string>());
    }

    [KubeFact]
    public async Task Revokes_the_key_of_an_ApiKey_that_vanished_while_no_operator_ran()
    {
        var key = await ReadyDemoAsync();
        await _h.StopAsync(_h.Apps.Single());

        // Someone strips the finalizer and deletes the object while the operator is down.
        await _h.ApiKeys.PatchAsync("default", "demo", new JsonObject { ["metadata"] = new JsonObject { ["finalizers"] = null } });
        await _h.ApiKeys.DeleteAsync("default", "demo");
        Assert.Null(await _h.GetAsync(TokenGateResources.ApiKeys, "demo"));
        Assert.True(await _h.RedisHasKeyAsync(key));

        await _h.StartOperatorAsync();
        await Eventually.TrueAsync(async () => !await _h.RedisHasKeyAsync(key), "the orphaned key to be revoked");
        await Eventually.TrueAsync(async () => await _h.Secrets.TryGetAsync("default", "demo-apikey") is null, "its Secret to be deleted");
        await using var db = _h.Db();
        Assert.NotNull((await db.ApiKeyVersions.SingleAsync()).RevokedAt);
        // The rest is untouched.
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
    }

    [KubeFact]
    public async Task Deleting_the_invite_secret_brings_a_fresh_invite_owned_by_the_UserQuota()
    {
        await ReadyDemoAsync();
        var first = await Eventually.ReturnsAsync(() => _h.Secrets.TryGetAsync("default", "demo-invite"), "the invite Secret");
        Assert.Equal("UserQuota", Assert.Single(first.Metadata.OwnerReferences!).Kind);

        await _h.Secrets.DeleteAsync("default", "demo-invite");

        var second = await Eventually.ReturnsAsync(() => _h.Secrets.TryGetAsync("default", "demo-invite"), "a new invite Secret");
        Assert.NotEqual(Convert.ToBase64String(first.Data!["INVITE_TOKEN"]), Convert.ToBase64String(second.Data!["INVITE_TOKEN"]));
    }
}
