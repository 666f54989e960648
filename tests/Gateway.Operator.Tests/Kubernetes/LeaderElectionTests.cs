using Gateway.Operator.Kubernetes;
using Gateway.Operator.Ledger;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>Two operator replicas against one API server: one leads and works, the other stands by and takes over.</summary>
public abstract class LeaderElectionTests : IAsyncLifetime
{
    public sealed class Fake : LeaderElectionTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : LeaderElectionTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    // The harness runs replicas with a 3 s lease, 2 s renew deadline and 250 ms retry period.
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(3);
    private KubernetesHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await StartClusterAsync());

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<(WebApplication Leader, WebApplication Standby)> StartTwoAsync(params string[] extra)
    {
        var a = await _h.StartOperatorAsync(extra);
        var b = await _h.StartOperatorAsync(extra);
        await Eventually.TrueAsync(() => Task.FromResult(KubernetesHarness.OperatorOf(a).Manager.IsLeader || KubernetesHarness.OperatorOf(b).Manager.IsLeader), "a leader");
        return KubernetesHarness.OperatorOf(a).Manager.IsLeader ? (a, b) : (b, a);
    }

    private async Task<(WebApplication Leader, WebApplication Standby)> CurrentLeaderAsync()
    {
        var (a, b) = (_h.Apps[0], _h.Apps[1]);
        await Eventually.TrueAsync(() => Task.FromResult(KubernetesHarness.OperatorOf(a).Manager.IsLeader ^ KubernetesHarness.OperatorOf(b).Manager.IsLeader), "exactly one leader");
        return KubernetesHarness.OperatorOf(a).Manager.IsLeader ? (a, b) : (b, a);
    }

    private Task<System.Text.Json.Nodes.JsonObject?> LeaseAsync() =>
        _h.GetAsync(Gateway.Kubernetes.Client.ResourceDefinition.Leases, "tokengate-operator", _h.Cluster.OperatorNamespace);

    [KubeFact]
    public async Task Only_the_leader_reconciles_while_the_standby_keeps_a_warm_cache()
    {
        // Default-length lease, so a loaded machine cannot make leadership change hands mid-test.
        var (leader, standby) = await StartTwoAsync("--TokenGate:Kubernetes:LeaseDuration", "00:00:15", "--TokenGate:Kubernetes:RenewDeadline", "00:00:10", "--TokenGate:Kubernetes:RetryPeriod", "00:00:00.500");
        var l = KubernetesHarness.OperatorOf(leader);
        var s = KubernetesHarness.OperatorOf(standby);

        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        await Eventually.TrueAsync(() => Task.FromResult(s.ApiKeyInformer.Store.Count == 1 && s.SecretInformer.Store.Get("default", "demo-apikey") is not null), "the standby's cache to see the objects");

        Assert.True(l.Reconciles > 0);
        Assert.True(l.Source.StatusWrites > 0);
        Assert.Equal(0, s.Reconciles);
        Assert.Equal(0, s.Source.StatusWrites);
        Assert.False(s.Manager.IsLeader);
        // The ledger writer and reservation sweeper run once cluster-wide: on the leader.
        Assert.NotNull(leader.Services.GetRequiredService<LedgerWriter>().ExecuteTask);
        Assert.NotNull(leader.Services.GetRequiredService<ReservationSweeper>().ExecuteTask);
        Assert.Null(standby.Services.GetRequiredService<LedgerWriter>().ExecuteTask);
        Assert.Null(standby.Services.GetRequiredService<ReservationSweeper>().ExecuteTask);
        var lease = (await LeaseAsync())!;
        Assert.Equal(l.Identity, lease["spec"]!["holderIdentity"]!.GetValue<string>());
    }

    [KubeFact]
    public async Task A_killed_leader_is_replaced_within_the_lease_duration_and_the_new_leader_reconciles()
    {
        // No release on stop: the lease is left as a crashed pod leaves it.
        await StartTwoAsync("--TokenGate:Kubernetes:ReleaseOnCancel", "false");
        await _h.ApplySamplesAsync();
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        var key = await _h.IssuedKeyAsync();

        // Whoever leads now (a loaded machine may have moved the short lease already).
        var (leader, standby) = await CurrentLeaderAsync();
        var s = KubernetesHarness.OperatorOf(standby);
        var transitions = (await LeaseAsync())!["spec"]!["leaseTransitions"]!.GetValue<int>();
        await _h.StopAsync(leader);
        var stopped = (await LeaseAsync())!["spec"]!;
        // On a very slow machine the standby may already hold it; then the dead leader's last renewal is unknown.
        DateTimeOffset? lastRenew = stopped["holderIdentity"]!.GetValue<string>() == s.Identity ? null
            : DateTimeOffset.Parse(stopped["renewTime"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        // Liveness with a deadline generous enough for a loaded machine (the takeover itself is due one lease
        // duration after the last renewal; how long it takes here is timing, which tests do not assert).
        await Eventually.TrueAsync(() => Task.FromResult(s.Manager.IsLeader), "the standby to take over", LeaseDuration * 3 + TimeSpan.FromSeconds(20));
        var lease = (await LeaseAsync())!;
        // Safety: the standby waited for the dead leader's lease to expire before taking it.
        var acquired = DateTimeOffset.Parse(lease["spec"]!["acquireTime"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        if (lastRenew is { } renewed)
        {
            Assert.True(acquired >= renewed + LeaseDuration - TimeSpan.FromMilliseconds(1), $"acquired at {acquired:O}, before the lease renewed at {renewed:O} expired");
        }
        Assert.Equal(s.Identity, lease["spec"]!["holderIdentity"]!.GetValue<string>());
        Assert.Equal(transitions + 1, lease["spec"]!["leaseTransitions"]!.GetValue<int>());

        // The new leader works: it re-reconciles what exists without re-issuing, and handles new objects.
        await Eventually.TrueAsync(() => Task.FromResult(s.Reconciles > 0), "the new leader to reconcile");
        await _h.ApplyAsync(KubernetesHarness.Yaml("""
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: second, namespace: default }
            spec: { owner: demo }
            """));
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "second");
        Assert.Equal(key, await _h.IssuedKeyAsync());
        Assert.True(await _h.RedisHasKeyAsync(await _h.IssuedKeyAsync("second-apikey")));
    }

    [KubeFact]
    public async Task A_leader_stopping_gracefully_releases_the_lease_for_an_immediate_hand_over()
    {
        var (leader, standby) = await StartTwoAsync();
        var s = KubernetesHarness.OperatorOf(standby);

        await _h.StopAsync(leader);

        var lease = (await LeaseAsync())!;
        Assert.True(lease["spec"]!["holderIdentity"] is null || lease["spec"]!["holderIdentity"]!.GetValue<string>() == s.Identity);
        await Eventually.TrueAsync(() => Task.FromResult(s.Manager.IsLeader), "the standby to take over");
    }
}
