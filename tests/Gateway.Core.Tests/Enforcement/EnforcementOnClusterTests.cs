using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// What the <c>Cluster</c> variants of the enforcement suites rely on: their client really is a cluster client, and the
/// users' shards really spread over all three masters, each user's scripts running on the master of its shard.
/// </summary>
[Collection(EnforcementClusterCollection.Name)]
public sealed class EnforcementOnClusterTests(EnforcementClusterFixture cluster)
{
    [Fact]
    public async Task Users_of_every_shard_are_admitted_settled_and_leased_each_on_the_master_of_its_shard()
    {
        await using var t = await cluster.CreateContextAsync();
        Assert.IsType<RedisClusterClient>(t.Redis);
        var client = (RedisClusterClient)t.Redis;

        // One user per shard.
        var users = new Dictionary<int, string>();
        for (var i = 0; users.Count < ProjectionKeys.ShardCount; i++) users.TryAdd(ProjectionKeys.ShardOf("user-" + i), "user-" + i);
        foreach (var (shard, userId) in users)
        {
            await t.SetBalanceAsync(userId, 1_000_000);
            var admitted = await t.Enforcer.AdmitAsync(Request(Key("key-" + userId, userId), User(userId), reservedMicros: 2_000));
            Assert.True(admitted.Allowed, $"shard {shard}: {admitted.Reason}");
            Assert.Equal(SettleOutcome.Settled, await t.Enforcer.SettleAsync(Settlement(admitted.Reservation!, 1_500, new TokenCounts(10, 0, 0, 20))));
            var grant = await t.Enforcer.GrantLeaseAsync(new LeaseRequest
            {
                LeaseId = "lease-" + userId, Owner = "replica-a", Key = Key("key-" + userId, userId), User = User(userId),
                Money = 100_000, Requests = 10, Tokens = 10_000, Ttl = TimeSpan.FromSeconds(30),
            });
            Assert.NotNull(grant.Lease);
            Assert.NotNull(await t.Enforcer.ReturnLeaseAsync(grant.Lease!));
            Assert.Equal(1_000_000 - 1_500, await t.GetLongAsync(t.Keys.Balance(userId)));
        }
        Assert.Equal(ProjectionKeys.ShardCount, (await t.UsageEventsAsync()).Count);

        // The shards' keys live on every master: each master owns the slot of some shards' tags, and holds their usage streams.
        var owners = ProjectionKeys.Shards.Select(s => client.EndPointForSlot(RedisKeySlot.Of(t.Keys.UsageStream(s)))).ToList();
        Assert.Equal(3, client.MasterEndPoints.Count);
        Assert.Equal(3, owners.Distinct().Count());
        foreach (var reply in await t.Redis.ExecuteOnEachMasterAsync("KEYS", [t.Keys.Prefix + "*"]))
            Assert.Contains(reply.Items, k => k.AsString()!.EndsWith(":usage", StringComparison.Ordinal));
    }
}
