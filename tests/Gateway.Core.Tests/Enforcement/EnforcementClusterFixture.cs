using Gateway.Testing;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// One three-master Redis Cluster on loopback for the enforcement and lease suites' <c>Cluster</c> variants (issue #11:
/// the same scripts, unchanged, on Redis Cluster). Each test gets its own key prefix on it.
/// </summary>
public sealed class EnforcementClusterFixture : IAsyncLifetime
{
    private ThrowawayRedisCluster? _cluster;

    public ThrowawayRedisCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster has not started.");

    public async Task InitializeAsync() => _cluster = await ThrowawayRedisCluster.StartAsync();

    public Task<EnforcementTestContext> CreateContextAsync(DateTimeOffset? start = null) =>
        EnforcementTestContext.CreateOnAsync(Cluster.ConnectionString, start);

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}

/// <summary>The test classes running the enforcement suite on the cluster of <see cref="EnforcementClusterFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class EnforcementClusterCollection : ICollectionFixture<EnforcementClusterFixture>
{
    public const string Name = "enforcement-on-redis-cluster";
}
