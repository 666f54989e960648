using System.Text.Json.Nodes;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// What keeps the operator cheap with many objects (issue #11 item 6, `make bench-operator`): an idle operator does
/// no work per object, usage and enrolment still reach status through the status change feed, and at a cold start
/// keys follow their owners instead of reporting OwnerNotFound. Counted, not timed: each "period" is a pass of the
/// feed, which runs every TokenGate:ResyncInterval (one second here).
/// </summary>
public abstract class OperatorAtScaleTests : IAsyncLifetime
{
    private KubernetesHarness _h = null!;

    public sealed class Fake : OperatorAtScaleTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : OperatorAtScaleTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await StartClusterAsync());

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<KubernetesOperator> ReadyDemoAsync()
    {
        var app = await _h.StartOperatorAsync("--TokenGate:ResyncInterval", "00:00:01");
        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        return KubernetesHarness.OperatorOf(app);
    }

    private static Task PassesAsync(KubernetesOperator op, long atLeast) =>
        Eventually.TrueAsync(() => Task.FromResult(op.StatusChangeFeed.Passes >= atLeast), $"{atLeast} passes of the status change feed");

    private static (long Keys, long Users, long StatusWrites) Work(KubernetesOperator op) =>
        (op.ApiKeyReconciler.Reconciles, op.UserQuotaReconciler.Reconciles, op.Source.StatusWrites);

    [KubeFact]
    public async Task With_nothing_changing_no_key_or_user_is_reconciled_and_no_status_is_written_over_several_resync_periods()
    {
        var op = await ReadyDemoAsync();
        // Settle: the reconciles the start itself causes (the new user row and its grant show up in the feed once).
        // Before the fix every object was reconciled again each ResyncInterval, so this never settled.
        var before = await Eventually.ReturnsAsync(async () =>
        {
            var w = Work(op);
            await PassesAsync(op, op.StatusChangeFeed.Passes + 2);
            return Work(op) == w ? new Box<(long, long, long)>(w) : null;
        }, "a feed period without reconciles");

        var passes = op.StatusChangeFeed.Passes;
        await PassesAsync(op, passes + 3);

        Assert.Equal(before.Value, Work(op));
    }

    [KubeFact]
    public async Task Usage_recorded_in_PostgreSQL_reaches_the_key_and_user_status_without_a_full_resync()
    {
        await ReadyDemoAsync();
        await using (var db = _h.Db())
        {
            var key = await db.ApiKeys.SingleAsync(k => k.Namespace == "default" && k.Name == "demo");
            var now = DateTimeOffset.UtcNow;
            var requestId = "req-" + Guid.NewGuid().ToString("N");
            db.UsageLog.Add(new UsageLogRow
            {
                RequestId = requestId, ApiKeyId = key.Id, KeyVersion = 1, UserId = key.UserId, Upstream = "default/mock", Model = "gpt-4o-mini",
                Route = "/v1/chat/completions", InputTokens = 10, OutputTokens = 5, Cost = 0.25m, PriceVersion = "test", StartedAt = now, Status = 200, CreatedAt = now,
            });
            db.LedgerEntries.Add(new LedgerEntryRow { UserId = key.UserId, Kind = LedgerKinds.Consume, Amount = -0.25m, RequestId = requestId, ApiKeyId = key.Id, CreatedAt = now });
            await db.SaveChangesAsync();
        }

        // FullResyncInterval is 10 hours: only the feed can bring these figures.
        await Eventually.TrueAsync(async () =>
            (await _h.GetAsync(TokenGateResources.ApiKeys, "demo"))?["status"]?["requests"]?.GetValue<long>() == 1, "status.requests = 1 on the ApiKey");
        await Eventually.TrueAsync(async () =>
            (await _h.GetAsync(TokenGateResources.UserQuotas, "demo"))?["status"]?["spentThisPeriod"]?.GetValue<decimal>() == 0.25m, "status.spentThisPeriod = 0.25 on the UserQuota");
    }

    [KubeFact]
    public async Task A_new_key_reaches_its_owners_key_count_without_a_full_resync()
    {
        await ReadyDemoAsync();
        await Eventually.TrueAsync(async () =>
            (await _h.GetAsync(TokenGateResources.UserQuotas, "demo"))?["status"]?["keyCount"]?.GetValue<int>() == 1, "status.keyCount = 1");

        await _h.ApplyAsync(KubernetesHarness.Yaml("""
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata:
              name: second
              namespace: default
            spec:
              owner: demo
            """));
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "second");

        await Eventually.TrueAsync(async () =>
            (await _h.GetAsync(TokenGateResources.UserQuotas, "demo"))?["status"]?["keyCount"]?.GetValue<int>() == 2, "status.keyCount = 2");
    }

    [KubeFact]
    public async Task Enrolling_in_the_portal_drops_the_invite_secret_without_a_full_resync()
    {
        await ReadyDemoAsync();
        await Eventually.ReturnsAsync(() => _h.Secrets.TryGetAsync("default", "demo-invite"), "the invite Secret");

        // What the portal's enrolment does to the row (Auth/EnrolmentService.CompleteAsync).
        await using (var db = _h.Db())
        {
            await db.Users.Where(u => u.Namespace == "default" && u.Name == "demo")
                .ExecuteUpdateAsync(u => u.SetProperty(x => x.Enrollment, "Enrolled").SetProperty(x => x.InviteTokenHash, (string?)null)
                    .SetProperty(x => x.UpdatedAt, DateTimeOffset.UtcNow));
        }

        await Eventually.TrueAsync(async () => await _h.Secrets.TryGetAsync("default", "demo-invite") is null, "the invite Secret to go");
        await Eventually.TrueAsync(async () =>
            (await _h.GetAsync(TokenGateResources.UserQuotas, "demo"))?["status"]?["enrollment"]?.GetValue<string>() == "Enrolled", "status.enrollment = Enrolled");
    }

    [KubeFact]
    public async Task Keys_applied_with_their_owner_before_the_operator_starts_wait_for_it_and_never_report_OwnerNotFound()
    {
        await _h.ApplySamplesAsync();
        const int extra = 12;
        for (var i = 0; i < extra; i++)
        {
            await _h.ApplyAsync(KubernetesHarness.Yaml($"""
                apiVersion: tokengate.io/v1alpha1
                kind: ApiKey
                metadata:
                  name: more-{i}
                  namespace: default
                spec:
                  owner: demo
                """));
        }
        // maxKeys of the sample owner is 5: raise it so every key can be issued.
        await _h.UserQuotas.PatchAsync("default", "demo", JsonNode.Parse("""{"spec":{"maxKeys":50}}""")!);

        var op = KubernetesHarness.OperatorOf(await _h.StartOperatorAsync());
        for (var i = 0; i < extra; i++) await _h.ReadyAsync(TokenGateResources.ApiKeys, $"more-{i}");
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");

        var reasons = (await _h.ListAsync(ResourceDefinition.Events)).Select(e => e["reason"]?.GetValue<string>()).ToList();
        Assert.DoesNotContain("OwnerNotFound", reasons);
        Assert.Equal(extra + 1, reasons.Count(r => r == "KeyIssued"));
        Assert.True(op.ApiKeyReconciler.Reconciles > 0);
    }

    private sealed record Box<T>(T Value);
}
