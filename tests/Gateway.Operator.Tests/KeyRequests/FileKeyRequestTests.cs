using System.Text;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Projection;
using Gateway.Core.Storage;
using Gateway.Operator.KeyRequests;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Gateway.Operator.Tests.KeyRequests;

/// <summary>Portal key requests carried out by the operator with the file source, against real PostgreSQL and Redis.</summary>
public sealed class FileKeyRequestTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private NpgsqlDataSource _data = null!;
    private readonly AdvanceableTimeProvider _time = new();

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _data = NpgsqlDataSource.Create(_f.Database.ConnectionString);
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _data.DisposeAsync();
        await _f.DisposeAsync();
    }

    private KeyRequestProcessor Processor() => new(_data, _f.DbFactory, _f.Reconciler,
        new FilePortalKeyStore(_f.Source, _f.Driver, _f.Reconciler), _f.Hasher, _time, NullLogger<KeyRequestProcessor>.Instance);

    private async Task<UserRow> DemoUserAsync()
    {
        await using var db = _f.Db();
        return await db.Users.SingleAsync(u => u.Name == "demo");
    }

    private async Task<ApiKeyRow> KeyAsync(string name)
    {
        await using var db = _f.Db();
        return await db.ApiKeys.SingleAsync(k => k.Name == name);
    }

    private async Task<KeyRequestRow> RequestAsync(Guid id)
    {
        await using var db = _f.Db();
        return await db.KeyRequests.AsNoTracking().SingleAsync(r => r.Id == id);
    }

    private async Task<string> RevealedAsync(KeyRequestTestData.Request request)
    {
        await using var db = _f.Db();
        var reveal = await db.KeyReveals.SingleAsync(r => r.RequestId == request.Id);
        var key = KeyRequestTestData.Decrypt(reveal, request);
        // Only ciphertext is stored: neither the key nor its random part appears in the bytes.
        Assert.DoesNotContain(key[3..], Encoding.UTF8.GetString(reveal.Ciphertext), StringComparison.Ordinal);
        Assert.DoesNotContain(key[3..], Convert.ToBase64String(reveal.Ciphertext), StringComparison.Ordinal);
        return key;
    }

    private async Task<KeyProjection?> ProjectionAsync(string plaintext)
    {
        var json = (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(_f.Hasher.Hash(plaintext))])).AsString();
        return json is null ? null : JsonSerializer.Deserialize<KeyProjection>(json, TokenGateJson.Options);
    }

    private async Task<string> SecretKeyAsync(string apiKeyName)
    {
        var secret = await _f.Source.GetSecretAsync("default", apiKeyName + "-apikey", CancellationToken.None);
        Assert.NotNull(secret);
        return Encoding.UTF8.GetString(secret["OPENAI_API_KEY"]);
    }

    [Fact]
    public async Task Create_writes_a_portal_manifest_the_file_source_reads_and_reveals_the_usable_key_encrypted()
    {
        var user = await DemoUserAsync();
        var req = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create,
            parameters: new KeyRequestParameters { Description = "CI \"runner\": ünïcode", AllowedModels = ["gpt-4o*"] });

        Assert.Equal(1, await Processor().ProcessPendingAsync(CancellationToken.None));

        var done = await RequestAsync(req.Id);
        Assert.Equal((KeyRequestStatus.Done, (string?)null), (done.Status, done.Error));
        var name = KeyRequestProcessor.KeyName("demo", req.Id);
        var manifest = _f.Source.PortalKeyPath("default", name);
        Assert.StartsWith(Path.Combine(_f.StateDir, "portal", "apikeys", "default"), manifest, StringComparison.Ordinal);
        Assert.True(File.Exists(manifest));
        var snapshot = _f.Source.Load();
        Assert.Empty(snapshot.Errors);
        var declared = Assert.Single(snapshot.ApiKeys, k => k.Metadata.Name == name);
        Assert.Equal("portal", declared.Metadata.Labels![KeyRequestContract.CreatedByLabel]);
        Assert.Equal(("demo", "CI \"runner\": ünïcode", "gpt-4o*"), (declared.Spec.Owner, declared.Spec.Description, Assert.Single(declared.Spec.AllowedModels)));

        var key = await RevealedAsync(req);
        Assert.True(ApiKeyFormat.IsWellFormed(key));
        Assert.Equal(key, await SecretKeyAsync(name));
        var row = await KeyAsync(name);
        Assert.True(row.PortalCreated);
        Assert.Equal(row.Id, done.ResultApiKeyId);
        var projection = (await ProjectionAsync(key))!;
        Assert.NotNull(projection);
        Assert.Equal((user.Id.ToString(), false, (DateTimeOffset?)null), (projection.UserId, projection.Disabled, projection.ValidUntil));

        // The driver's next pass reads the manifest and keeps the same key (no second issuance).
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(key, await SecretKeyAsync(name));
        await using var db = _f.Db();
        Assert.Equal(1, await db.ApiKeyVersions.CountAsync(v => v.ApiKeyId == row.Id));
        Assert.False(await db.KeyRequests.AnyAsync(r => r.RevealPrivateKey != null && r.RevealPrivateKey.Contains(key)));
    }

    [Fact]
    public async Task Create_beyond_maxKeys_fails_with_a_clear_message_and_creates_nothing()
    {
        _f.WriteManifest("userquota-demo.yaml", File.ReadAllText(Path.Combine(RepoPaths.Samples, "userquota-demo.yaml")).Replace("maxKeys: 5", "maxKeys: 2", StringComparison.Ordinal));
        await _f.Driver.PassAsync(CancellationToken.None);
        var user = await DemoUserAsync();
        var first = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create);
        var second = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create);

        Assert.Equal(2, await Processor().ProcessPendingAsync(CancellationToken.None));

        Assert.Equal(KeyRequestStatus.Done, (await RequestAsync(first.Id)).Status);
        var refused = await RequestAsync(second.Id);
        Assert.Equal(KeyRequestStatus.Failed, refused.Status);
        Assert.Equal("You already have 2 key(s), the most your quota allows (2). Delete a key first.", refused.Error);
        Assert.False(File.Exists(_f.Source.PortalKeyPath("default", KeyRequestProcessor.KeyName("demo", second.Id))));
        await using var db = _f.Db();
        Assert.False(await db.KeyReveals.AnyAsync(r => r.RequestId == second.Id));
        Assert.Equal(2, await db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.DeletedAt == null));
    }

    [Fact]
    public async Task Rotating_a_GitOps_key_reveals_the_new_version_and_the_old_one_stays_valid_for_its_grace_period()
    {
        var user = await DemoUserAsync();
        var demo = await KeyAsync("demo");
        var oldKey = await SecretKeyAsync("demo");
        var req = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Rotate, demo.Id);

        Assert.Equal(1, await Processor().ProcessPendingAsync(CancellationToken.None));

        Assert.Equal(KeyRequestStatus.Done, (await RequestAsync(req.Id)).Status);
        var newKey = await RevealedAsync(req);
        Assert.NotEqual(oldKey, newKey);
        Assert.Equal(newKey, await SecretKeyAsync("demo"));
        var current = (await ProjectionAsync(newKey))!;
        var previous = (await ProjectionAsync(oldKey))!;
        Assert.NotNull(current);
        Assert.NotNull(previous);
        Assert.Equal((2, (DateTimeOffset?)null), (current.Version, current.ValidUntil));
        Assert.Equal(1, previous.Version);
        // gracePeriod 24h in the sample: the old version works for about a day more, then is revoked.
        Assert.InRange(previous.ValidUntil!.Value, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        await using var db = _f.Db();
        var versions = await db.ApiKeyVersions.Where(v => v.ApiKeyId == demo.Id).OrderBy(v => v.Version).ToListAsync();
        Assert.Equal(2, versions.Count);
        Assert.Null(versions[0].RevokedAt);
        Assert.Equal(previous.ValidUntil!.Value, versions[0].ExpiresAt!.Value, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task Two_processors_racing_complete_every_request_exactly_once()
    {
        var user = await DemoUserAsync();
        var demo = await KeyAsync("demo");
        var requests = new List<(KeyRequestTestData.Request Request, string Kind)>();
        for (var i = 0; i < 6; i++)
        {
            requests.Add((await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Rotate, demo.Id), KeyRequestKinds.Rotate));
            if (i % 2 == 0) requests.Add((await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create), KeyRequestKinds.Create));
        }

        var a = Processor();
        var b = Processor();
        var counts = await Task.WhenAll(Task.Run(() => a.ProcessPendingAsync(CancellationToken.None)), Task.Run(() => b.ProcessPendingAsync(CancellationToken.None)));

        await using var db = _f.Db();
        Assert.Equal(string.Join(",", requests.Select(_ => "done")), string.Join(",", (await db.KeyRequests.OrderBy(r => r.CreatedAt).ToListAsync()).Select(r => r.Status + r.Error)));
        Assert.Equal(requests.Count, counts.Sum());
        Assert.All(await db.KeyRequests.ToListAsync(), r => Assert.Equal((KeyRequestStatus.Done, (string?)null), (r.Status, r.Error)));
        Assert.Equal(requests.Count, await db.KeyReveals.CountAsync());
        // Six rotations of demo: versions 1..7, each revealed key distinct and one of them.
        var hashes = await db.ApiKeyVersions.Where(v => v.ApiKeyId == demo.Id).Select(v => v.KeyHash).ToListAsync();
        Assert.Equal(7, hashes.Count);
        var revealed = new List<string>();
        foreach (var (request, kind) in requests) revealed.Add(await RevealedAsync(request));
        Assert.Equal(revealed.Count, revealed.Distinct().Count());
        foreach (var (key, (_, kind)) in revealed.Zip(requests))
        {
            if (kind == KeyRequestKinds.Rotate) Assert.Contains(_f.Hasher.Hash(key), hashes.Select(h => h.Trim()));
        }
        Assert.Equal(3, await db.ApiKeys.CountAsync(k => k.PortalCreated && k.DeletedAt == null));
    }

    [Fact]
    public async Task Deleting_a_GitOps_key_is_refused_while_a_portal_key_is_removed_and_revoked()
    {
        var user = await DemoUserAsync();
        var create = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create);
        await Processor().ProcessPendingAsync(CancellationToken.None);
        var portalKey = await RevealedAsync(create);
        var portalRow = await KeyAsync(KeyRequestProcessor.KeyName("demo", create.Id));
        var gitopsKey = await SecretKeyAsync("demo");

        var refuse = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Delete, (await KeyAsync("demo")).Id);
        var delete = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Delete, portalRow.Id);
        Assert.Equal(2, await Processor().ProcessPendingAsync(CancellationToken.None));

        var refused = await RequestAsync(refuse.Id);
        Assert.Equal(KeyRequestStatus.Failed, refused.Status);
        Assert.Contains("declared in GitOps", refused.Error, StringComparison.Ordinal);
        Assert.NotNull(await ProjectionAsync(gitopsKey));
        Assert.True(File.Exists(Path.Combine(_f.Folder, "apikey-demo.yaml")));

        Assert.Equal(KeyRequestStatus.Done, (await RequestAsync(delete.Id)).Status);
        Assert.False(File.Exists(_f.Source.PortalKeyPath("default", portalRow.Name)));
        Assert.Null(await ProjectionAsync(portalKey));
        Assert.NotNull((await KeyAsync(portalRow.Name)).DeletedAt);
        // And it stays deleted through the next pass.
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Null(await ProjectionAsync(portalKey));
        Assert.Null(await _f.Source.GetSecretAsync("default", portalRow.Name + "-apikey", CancellationToken.None));
    }

    [Fact]
    public async Task Disabling_a_GitOps_key_uses_the_owner_switch_and_a_portal_key_its_spec_and_enable_restores_both()
    {
        var user = await DemoUserAsync();
        var create = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Create);
        await Processor().ProcessPendingAsync(CancellationToken.None);
        var portalKey = await RevealedAsync(create);
        var portalName = KeyRequestProcessor.KeyName("demo", create.Id);
        var gitopsKey = await SecretKeyAsync("demo");
        var gitopsManifest = File.ReadAllText(Path.Combine(_f.Folder, "apikey-demo.yaml"));

        await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Disable, (await KeyAsync("demo")).Id);
        await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Disable, (await KeyAsync(portalName)).Id);
        Assert.Equal(2, await Processor().ProcessPendingAsync(CancellationToken.None));

        Assert.True((await ProjectionAsync(gitopsKey))!.Disabled);
        Assert.True((await ProjectionAsync(portalKey))!.Disabled);
        Assert.True((await KeyAsync("demo")).UserDisabled);
        Assert.Equal(gitopsManifest, File.ReadAllText(Path.Combine(_f.Folder, "apikey-demo.yaml")));
        Assert.Contains("disabled: true", File.ReadAllText(_f.Source.PortalKeyPath("default", portalName)), StringComparison.Ordinal);
        var status = _f.Source.ReadStatus<Gateway.Core.Resources.ApiKeyStatus>("ApiKey", "default", "demo")!;
        Assert.Equal("DisabledByOwner", Gateway.Kubernetes.Runtime.Conditions.Find(status.Conditions, "Ready")!.Reason);
        // A pass keeps the owner's switch (it is not part of the GitOps spec).
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.True((await ProjectionAsync(gitopsKey))!.Disabled);

        await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Enable, (await KeyAsync("demo")).Id);
        await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Enable, (await KeyAsync(portalName)).Id);
        Assert.Equal(2, await Processor().ProcessPendingAsync(CancellationToken.None));
        Assert.False((await ProjectionAsync(gitopsKey))!.Disabled);
        Assert.False((await ProjectionAsync(portalKey))!.Disabled);
        Assert.Contains("disabled: false", File.ReadAllText(_f.Source.PortalKeyPath("default", portalName)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Requests_for_someone_elses_key_fail_and_cleanup_deletes_reveals_after_ten_minutes()
    {
        _f.WriteManifest("userquota-other.yaml", """
            apiVersion: tokengate.io/v1alpha1
            kind: UserQuota
            metadata: { name: other, namespace: default }
            spec:
              user: { name: other, email: other@example.com }
            """);
        await _f.Driver.PassAsync(CancellationToken.None);
        await using (var db = _f.Db())
        {
            var other = await db.Users.SingleAsync(u => u.Name == "other");
            var steal = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, other.Id, KeyRequestKinds.Rotate, (await KeyAsync("demo")).Id);
            await Processor().ProcessPendingAsync(CancellationToken.None);
            var refused = await RequestAsync(steal.Id);
            Assert.Equal((KeyRequestStatus.Failed, "The key no longer exists."), (refused.Status, refused.Error));
            Assert.False(await db.KeyReveals.AnyAsync());
        }

        var user = await DemoUserAsync();
        var rotate = await KeyRequestTestData.InsertAsync(_f.Database.ConnectionString, user.Id, KeyRequestKinds.Rotate, (await KeyAsync("demo")).Id);
        var processor = Processor();
        await processor.ProcessPendingAsync(CancellationToken.None);
        await processor.CleanupAsync(CancellationToken.None);
        await using (var db = _f.Db()) Assert.True(await db.KeyReveals.AnyAsync(r => r.RequestId == rotate.Id));

        _time.Advance(TimeSpan.FromMinutes(10));
        await processor.CleanupAsync(CancellationToken.None);
        await using (var db = _f.Db())
        {
            Assert.False(await db.KeyReveals.AnyAsync());
            Assert.Null((await db.KeyRequests.SingleAsync(r => r.Id == rotate.Id)).RevealPrivateKey);
        }
    }
}
