namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// One real API server for a test collection (it takes seconds to start), set up once; each test gets it
/// emptied through <see cref="AcquireAsync"/>. Starts nothing when <c>KUBEBUILDER_ASSETS</c> is missing
/// (the tests of the collection are then reported as skipped).
/// </summary>
public sealed class RealApiServerFixture : Xunit.IAsyncLifetime
{
    private RealKubeCluster? _cluster;
    private Exception? _startFailure;

    public async Task InitializeAsync()
    {
        if (!EnvtestAssets.Available) return;
        try { _cluster = await RealKubeCluster.StartAsync(RepoPaths.Root); }
        catch (Exception e) { _startFailure = e; }
    }

    /// <summary>Where the operator's RBAC came from ("helm template …" or "config/rbac"); null when not started.</summary>
    public string? RbacSource => _cluster?.RbacSource;

    /// <summary>The shared cluster, emptied of what earlier tests left.</summary>
    public async Task<IKubeTestCluster> AcquireAsync()
    {
        if (EnvtestAssets.Unavailable is { } why) throw new InvalidOperationException(why);
        if (_cluster is null) throw new InvalidOperationException("The real API server did not start.", _startFailure);
        await _cluster.ResetAsync();
        return new Lease(_cluster);
    }

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }

    /// <summary>The cluster for one test: disposing it leaves the shared server running.</summary>
    private sealed class Lease(RealKubeCluster cluster) : IKubeTestCluster
    {
        public string Name => cluster.Name;
        public Gateway.Kubernetes.Client.KubernetesClient Admin => cluster.Admin;
        public string AdminKubeconfigPath => cluster.AdminKubeconfigPath;
        public string OperatorKubeconfigPath => cluster.OperatorKubeconfigPath;
        public string OperatorNamespace => cluster.OperatorNamespace;
        public FakeApiServer? Fake => null;
        public Task EnsureNamespaceAsync(string ns) => cluster.EnsureNamespaceAsync(ns);
        public Task GrantLeaderElectionInAsync(string ns) => cluster.GrantLeaderElectionInAsync(ns);
        public Task CompactAsync() => cluster.CompactAsync();
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
