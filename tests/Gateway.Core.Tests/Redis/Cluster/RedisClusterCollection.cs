using Gateway.Testing;

namespace Gateway.Core.Tests.Redis.Cluster;

/// <summary>The test classes that share one three-master <see cref="ThrowawayRedisCluster"/>, one test at a time
/// (some move slots between nodes; every test finds its keys' nodes by asking the cluster).</summary>
[CollectionDefinition(Name)]
public sealed class RedisClusterCollection : ICollectionFixture<RedisClusterFixture>
{
    public const string Name = "redis-cluster";
}
