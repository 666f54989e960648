using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests.Runtime;

public sealed partial class LeaderElectionTests : IAsyncLifetime
{
    private static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(2);
    private KubeTestContext _k = null!;
    private readonly List<IDisposable> _disposables = [];

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var d in _disposables) d.Dispose();
        await _k.DisposeAsync();
    }

    private static LeaderElectionOptions Options(string identity, bool release = true) => new()
    {
        LeaseName = "tokengate-operator",
        LeaseNamespace = "default",
        Identity = identity,
        LeaseDuration = LeaseDuration,
        RenewDeadline = TimeSpan.FromSeconds(1.2),
        RetryPeriod = TimeSpan.FromMilliseconds(100),
        ReleaseOnCancel = release,
    };

    private KubernetesClient NewClient()
    {
        var c = _k.NewClient();
        _disposables.Add(c);
        return c;
    }

    [GeneratedRegex(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")]
    private static partial Regex MicroTime();

    private sealed class Candidate : IDisposable
    {
        public Candidate(LeaderElector elector, LeadershipMonitor monitor)
        {
            Elector = elector;
            Run = elector.RunAsync(async ct =>
            {
                monitor.Enter(elector.Identity);
                try
                {
                    await Task.Delay(Timeout.Infinite, ct);
                }
                finally
                {
                    monitor.Exit(elector.Identity);
                }
            }, cancellationToken: Cts.Token);
        }

        public LeaderElector Elector { get; }
        public CancellationTokenSource Cts { get; } = new();
        public Task Run { get; }

        public void Dispose()
        {
            Cts.Cancel();
            Elector.Dispose();
            Cts.Dispose();
        }
    }

    private sealed class LeadershipMonitor
    {
        private readonly Lock _lock = new();
        private int _current;
        public int MaxConcurrent { get; private set; }
        public ConcurrentQueue<string> Terms { get; } = new();

        public void Enter(string id)
        {
            lock (_lock)
            {
                _current++;
                MaxConcurrent = Math.Max(MaxConcurrent, _current);
            }
            Terms.Enqueue(id);
        }

        public void Exit(string id)
        {
            lock (_lock) _current--;
        }
    }

    [Fact]
    public async Task Only_one_of_two_candidates_leads_and_the_lease_records_it()
    {
        var monitor = new LeadershipMonitor();
        using var a = new Candidate(new LeaderElector(NewClient(), Options("a")), monitor);
        using var b = new Candidate(new LeaderElector(NewClient(), Options("b")), monitor);

        await Eventually.TrueAsync(() => Task.FromResult(a.Elector.IsLeader || b.Elector.IsLeader), "a leader");
        var leader = a.Elector.IsLeader ? a : b;
        var follower = a.Elector.IsLeader ? b : a;

        // Let several renewals happen, then check nobody else ever led.
        var firstRenew = _k.Server.GetObject(FakeApiServer.Leases, "default", "tokengate-operator")!["spec"]!["renewTime"]!.GetValue<string>();
        await Eventually.TrueAsync(() => Task.FromResult(_k.Server.CountRequests("PUT", "/leases/tokengate-operator") >= 5), "renewals");
        Assert.False(follower.Elector.IsLeader);
        Assert.Equal(1, monitor.MaxConcurrent);
        Assert.Equal(leader.Elector.Identity, follower.Elector.CurrentLeader);

        var spec = _k.Server.GetObject(FakeApiServer.Leases, "default", "tokengate-operator")!["spec"]!;
        Assert.Equal(leader.Elector.Identity, spec["holderIdentity"]!.GetValue<string>());
        Assert.Equal(2, spec["leaseDurationSeconds"]!.GetValue<int>());
        Assert.Equal(0, spec["leaseTransitions"]!.GetValue<int>());
        Assert.Matches(MicroTime(), spec["renewTime"]!.GetValue<string>());
        Assert.Matches(MicroTime(), spec["acquireTime"]!.GetValue<string>());
        Assert.NotEqual(firstRenew, spec["renewTime"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cancelling_the_leader_releases_the_lease_and_the_other_takes_over_within_the_lease_duration()
    {
        var monitor = new LeadershipMonitor();
        using var a = new Candidate(new LeaderElector(NewClient(), Options("a")), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(a.Elector.IsLeader), "a to lead");
        using var b = new Candidate(new LeaderElector(NewClient(), Options("b")), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(b.Elector.CurrentLeader == "a"), "b to observe a");

        await a.Cts.CancelAsync();
        await a.Run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.False(a.Elector.IsLeader);

        await Eventually.TrueAsync(() => Task.FromResult(b.Elector.IsLeader), "b to take over", LeaseDuration);
        var spec = _k.Server.GetObject(FakeApiServer.Leases, "default", "tokengate-operator")!["spec"]!;
        Assert.Equal("b", spec["holderIdentity"]!.GetValue<string>());
        Assert.Equal(1, spec["leaseTransitions"]!.GetValue<int>());
        Assert.Equal(1, monitor.MaxConcurrent);
        Assert.Equal(["a", "b"], monitor.Terms.ToArray());
    }

    [Fact]
    public async Task Graceful_stop_releases_the_lease_like_client_go()
    {
        var monitor = new LeadershipMonitor();
        using var a = new Candidate(new LeaderElector(NewClient(), Options("a")), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(a.Elector.IsLeader), "a to lead");

        await a.Cts.CancelAsync();
        await a.Run.WaitAsync(TimeSpan.FromSeconds(30));

        var spec = _k.Server.GetObject(FakeApiServer.Leases, "default", "tokengate-operator")!["spec"]!.AsObject();
        Assert.True(spec["holderIdentity"] is null || spec["holderIdentity"]!.GetValue<string>() == "");
        Assert.Equal(1, spec["leaseDurationSeconds"]!.GetValue<int>());
        Assert.Equal(0, spec["leaseTransitions"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_leader_that_stops_renewing_without_release_is_replaced_after_the_lease_expires()
    {
        var monitor = new LeadershipMonitor();
        using var a = new Candidate(new LeaderElector(NewClient(), Options("a", release: false)), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(a.Elector.IsLeader), "a to lead");
        using var b = new Candidate(new LeaderElector(NewClient(), Options("b")), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(b.Elector.CurrentLeader == "a"), "b to observe a");

        // A crash: a stops without handing the lease back.
        await a.Cts.CancelAsync();
        await a.Run.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal("a", _k.Server.GetObject(FakeApiServer.Leases, "default", "tokengate-operator")!["spec"]!["holderIdentity"]!.GetValue<string>());

        await Eventually.TrueAsync(() => Task.FromResult(b.Elector.IsLeader), "b to take over after expiry", LeaseDuration * 3);
        Assert.Equal(1, monitor.MaxConcurrent);
    }

    [Fact]
    public async Task A_leader_that_cannot_renew_steps_down()
    {
        var monitor = new LeadershipMonitor();
        using var a = new Candidate(new LeaderElector(NewClient(), Options("a")), monitor);
        await Eventually.TrueAsync(() => Task.FromResult(a.Elector.IsLeader), "a to lead");

        _k.Server.InjectFailure(500, times: 1_000_000, pathContains: "/leases/");
        await Eventually.TrueAsync(() => Task.FromResult(!a.Elector.IsLeader), "a to step down", LeaseDuration * 3);
        await a.Run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Records reconcile intervals per replica.</summary>
    private sealed class RecordingReconciler(string identity, ConcurrentQueue<(string Id, string Name, long Start, long End)> log) : IReconciler<Widget>
    {
        public async Task<ReconcileResult> ReconcileAsync(string? ns, string name, CancellationToken cancellationToken)
        {
            var start = System.Diagnostics.Stopwatch.GetTimestamp();
            await Task.Delay(5, CancellationToken.None);
            log.Enqueue((identity, name, start, System.Diagnostics.Stopwatch.GetTimestamp()));
            return ReconcileResult.Done;
        }
    }

    [Fact]
    public async Task Two_operator_replicas_never_reconcile_at_the_same_time_and_hand_over_on_shutdown()
    {
        var log = new ConcurrentQueue<(string Id, string Name, long Start, long End)>();
        (ControllerManager Manager, CancellationTokenSource Cts, Task Run) Replica(string id)
        {
            var client = NewClient();
            var manager = new ControllerManager(client, Options(id));
            var informer = manager.Informer(client.Resource<Widget>(KubeTestContext.WidgetDefinition, KubeTestContext.Json));
            manager.Add(new Controller<Widget>(informer, new RecordingReconciler(id, log), new ControllerOptions<Widget> { Name = "Widget-" + id, Workers = 2 }));
            var cts = new CancellationTokenSource();
            _disposables.Add(cts);
            return (manager, cts, manager.RunAsync(cts.Token));
        }

        var first = Replica("a");
        await Eventually.TrueAsync(() => Task.FromResult(first.Manager.IsLeader), "a to lead");
        var second = Replica("b");
        for (var i = 0; i < 5; i++) await _k.Widgets.CreateAsync(Widget.Named($"before{i}"));
        await Eventually.TrueAsync(() => Task.FromResult(log.Count(l => l.Name.StartsWith("before", StringComparison.Ordinal)) >= 5), "the first five reconciled");
        Assert.All(log, l => Assert.Equal("a", l.Id));
        Assert.True(second.Manager.HasSynced, "the standby keeps a warm cache");
        Assert.False(second.Manager.IsLeader);

        await first.Cts.CancelAsync();
        await first.Run.WaitAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 5; i++) await _k.Widgets.CreateAsync(Widget.Named($"after{i}"));

        await Eventually.TrueAsync(() => Task.FromResult(log.Count(l => l.Id == "b" && l.Name.StartsWith("after", StringComparison.Ordinal)) >= 5), "b to reconcile the new objects", LeaseDuration * 3);
        var lastOfA = log.Where(l => l.Id == "a").Max(l => l.End);
        var firstOfB = log.Where(l => l.Id == "b").Min(l => l.Start);
        Assert.True(firstOfB > lastOfA, "b started reconciling only after a had finished");
        await second.Cts.CancelAsync();
        await second.Run.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
