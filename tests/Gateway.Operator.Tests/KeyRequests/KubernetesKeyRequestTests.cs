using System.Text.Json.Nodes;
using Gateway.Core.Keys;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Operator.KeyRequests;
using Gateway.Operator.Kubernetes;
using Gateway.Operator.Tests.Kubernetes;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.KeyRequests;

/// <summary>
/// Portal key requests with the Kubernetes source: the operator host (leader) is woken by NOTIFY and creates,
/// rotates and deletes ApiKey objects in the fake API server.
/// </summary>
public sealed class KubernetesKeyRequestTests : IAsyncLifetime
{
    private KubernetesHarness _h = null!;

    public async Task InitializeAsync()
    {
        // The fake: the test inspects every API call the operator made (the real server checks them by RBAC instead).
        _h = await KubernetesHarness.StartAsync(await KubernetesHarness.FakeClusterAsync());
        // A long poll: completing within the test deadlines shows the NOTIFY wake-up works.
        await _h.StartOperatorAsync("--TokenGate:KeyRequests:PollInterval", "00:05:00");
        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
    }

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<Guid> DemoUserIdAsync()
    {
        await using var db = _h.Db();
        return (await db.Users.SingleAsync(u => u.Name == "demo")).Id;
    }

    private Task<KeyRequestRow> CompletedAsync(Guid id) =>
        Eventually.ReturnsAsync(async () =>
        {
            await using var db = _h.Db();
            var r = await db.KeyRequests.AsNoTracking().SingleAsync(x => x.Id == id);
            return r.Status == KeyRequestStatus.Pending ? null : r;
        }, "the key request to complete");

    private async Task<string> RevealedAsync(KeyRequestTestData.Request request)
    {
        await using var db = _h.Db();
        return KeyRequestTestData.Decrypt(await db.KeyReveals.SingleAsync(r => r.RequestId == request.Id), request);
    }

    [Fact]
    public async Task Create_makes_a_labelled_ApiKey_owned_by_the_user_and_delete_removes_it_through_the_finalizer()
    {
        var userId = await DemoUserIdAsync();
        var before = _h.Cluster.Fake!.Requests.Count;
        var create = await KeyRequestTestData.InsertAsync(_h.Database.ConnectionString, userId, KeyRequestKinds.Create,
            parameters: new KeyRequestParameters { Description = "laptop" });

        var done = await CompletedAsync(create.Id);
        Assert.Equal((KeyRequestStatus.Done, (string?)null), (done.Status, done.Error));
        var name = KeyRequestProcessor.KeyName("demo", create.Id);
        var ak = (await _h.GetAsync(TokenGateResources.ApiKeys, name))!;
        Assert.NotNull(ak);
        Assert.Equal("portal", ak["metadata"]!["labels"]![KeyRequestContract.CreatedByLabel]!.GetValue<string>());
        Assert.Equal(create.Id.ToString(), ak["metadata"]!["annotations"]![KeyRequestContract.RequestAnnotation]!.GetValue<string>());
        Assert.Contains(TokenGateApi.Finalizer, ak["metadata"]!["finalizers"]!.AsArray().Select(f => f!.GetValue<string>()));
        Assert.Equal(("demo", "laptop"), (ak["spec"]!["owner"]!.GetValue<string>(), ak["spec"]!["description"]!.GetValue<string>()));

        var key = await RevealedAsync(create);
        Assert.True(ApiKeyFormat.IsWellFormed(key));
        Assert.Equal(key, await _h.IssuedKeyAsync(name + "-apikey"));
        Assert.True(await _h.RedisHasKeyAsync(key));
        await _h.ReadyAsync(TokenGateResources.ApiKeys, name);
        // The controller reconciling the new object afterwards keeps the revealed key.
        Assert.Equal(key, await _h.IssuedKeyAsync(name + "-apikey"));

        var delete = await KeyRequestTestData.InsertAsync(_h.Database.ConnectionString, userId, KeyRequestKinds.Delete, done.ResultApiKeyId);
        Assert.Equal(KeyRequestStatus.Done, (await CompletedAsync(delete.Id)).Status);
        await Eventually.TrueAsync(async () => await _h.GetAsync(TokenGateResources.ApiKeys, name) is null, "the ApiKey to be gone");
        await Eventually.TrueAsync(async () => !await _h.RedisHasKeyAsync(key), "the key to be revoked in Redis");

        // Every call made meanwhile (the operator's, and this test's Secret reads) is allowed by config/rbac.
        var grants = ManifestTests.Grants();
        var calls = _h.Cluster.Fake!.Requests.Skip(before).Select(ManifestTests.Classify).ToList();
        Assert.All(calls, c => Assert.Contains(c, grants));
        Assert.Contains(("tokengate.io", "apikeys", "create"), calls);
        Assert.Contains(("tokengate.io", "apikeys", "delete"), calls);
    }

    [Fact]
    public async Task A_GitOps_key_is_rotated_with_a_reveal_but_not_deleted()
    {
        var userId = await DemoUserIdAsync();
        var oldKey = await _h.IssuedKeyAsync();
        Guid demoId;
        await using (var db = _h.Db()) demoId = (await db.ApiKeys.SingleAsync(k => k.Name == "demo")).Id;

        var rotate = await KeyRequestTestData.InsertAsync(_h.Database.ConnectionString, userId, KeyRequestKinds.Rotate, demoId);
        var delete = await KeyRequestTestData.InsertAsync(_h.Database.ConnectionString, userId, KeyRequestKinds.Delete, demoId);

        Assert.Equal(KeyRequestStatus.Done, (await CompletedAsync(rotate.Id)).Status);
        var newKey = await RevealedAsync(rotate);
        Assert.NotEqual(oldKey, newKey);
        Assert.Equal(newKey, await _h.IssuedKeyAsync(not: oldKey));
        Assert.True(await _h.RedisHasKeyAsync(newKey));
        Assert.True(await _h.RedisHasKeyAsync(oldKey)); // grace period

        var refused = await CompletedAsync(delete.Id);
        Assert.Equal(KeyRequestStatus.Failed, refused.Status);
        Assert.Contains("declared in GitOps", refused.Error, StringComparison.Ordinal);
        var demo = await _h.GetAsync(TokenGateResources.ApiKeys, "demo");
        Assert.NotNull(demo);
        Assert.Null(demo["metadata"]!["deletionTimestamp"]);
        Assert.Null(demo["metadata"]!["labels"]?[KeyRequestContract.CreatedByLabel]);
    }
}
