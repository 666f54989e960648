namespace Gateway.Testing;

/// <summary>Starts one <see cref="ThrowawayRedisCluster"/> for a test class (<c>IClassFixture&lt;RedisClusterFixture&gt;</c>).</summary>
public sealed class RedisClusterFixture : Xunit.IAsyncLifetime
{
    private ThrowawayRedisCluster? _cluster;

    public ThrowawayRedisCluster Cluster => _cluster ?? throw new InvalidOperationException("The cluster has not started.");

    public async Task InitializeAsync() => _cluster = await ThrowawayRedisCluster.StartAsync();

    public async Task DisposeAsync()
    {
        if (_cluster is not null) await _cluster.DisposeAsync();
    }
}
