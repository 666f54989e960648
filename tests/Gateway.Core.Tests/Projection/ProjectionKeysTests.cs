using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;

namespace Gateway.Core.Tests.Projection;

/// <summary>
/// The Redis layout's hash tags (DESIGN "Hot path v2"): everything one user's scripts touch shares the user's shard tag, so
/// each script touches one slot on Redis Cluster; the projection's shared entries share <c>{meta}</c> and the upstream
/// counters <c>{up}</c>.
/// </summary>
public sealed class ProjectionKeysTests
{
    private readonly ProjectionKeys _keys = new("tg:");

    [Fact]
    public void The_shard_of_a_user_never_changes()
    {
        // Changing the hash would move every user's balance, counters and usage stream: pinned values.
        Assert.Equal(3, ProjectionKeys.ShardOf("u1"));
        Assert.Equal(6, ProjectionKeys.ShardOf("u2"));
        Assert.Equal(7, ProjectionKeys.ShardOf("alice"));
        Assert.Equal(14, ProjectionKeys.ShardOf("00000000-0000-0000-0000-000000000001"));
    }

    [Fact]
    public void Users_spread_evenly_over_the_shards()
    {
        var counts = new int[ProjectionKeys.ShardCount];
        for (var i = 0; i < 16_000; i++) counts[ProjectionKeys.ShardOf(Guid.NewGuid().ToString())]++;
        Assert.All(counts, c => Assert.InRange(c, 800, 1_200));
    }

    [Fact]
    public void Every_key_a_users_scripts_touch_shares_the_users_shard_tag()
    {
        const string user = "7d1c0f5e-1111-4a4a-9c9c-000000000042";
        var shard = ProjectionKeys.ShardOf(user);
        var tag = RedisKeySlot.HashTag(_keys.Balance(user));
        Assert.Equal(ProjectionKeys.ShardTag(shard), "{" + tag + "}");
        string[] userKeys =
        [
            _keys.BalanceGrants(user), _keys.BudgetSpent(user, "none"), _keys.BudgetSpent(user, "1780000000"),
            _keys.UserRateCounters(user), _keys.UserInflight(user),
            _keys.KeyRateCounters(user, "key-1"), _keys.KeyInflight(user, "key-1"), _keys.KeyLifetime(user, "key-1"),
            _keys.Reservation(user, "req-1"), _keys.Reservation(shard, "req-1"), _keys.Reservations(shard),
            _keys.Lease(user, "lease-1"), _keys.LeaseInflight(user, "lease-1"), _keys.Leases(shard), _keys.UserLeases(user),
            _keys.UsageStream(shard), _keys.RechargeRefund(user, "r-1"),
        ];
        Assert.All(userKeys, k => Assert.Equal(tag, RedisKeySlot.HashTag(k)));
        Assert.All(userKeys, k => Assert.StartsWith("tg:", k, StringComparison.Ordinal));
        // Names stay distinct per id.
        Assert.NotEqual(_keys.KeyLifetime(user, "key-1"), _keys.KeyLifetime(user, "key-2"));
        Assert.Equal(_keys.Reservation(user, "req-1"), _keys.Reservation(shard, "req-1"));
    }

    [Fact]
    public void Shard_i_hashes_into_the_ith_sixteenth_of_the_slots_so_an_even_split_of_slots_spreads_the_shards_evenly()
    {
        foreach (var shard in ProjectionKeys.Shards)
            Assert.InRange(RedisKeySlot.Of(_keys.UsageStream(shard)), shard * 1024, shard * 1024 + 1023);
    }

    [Fact]
    public void Shards_have_distinct_tags_and_their_own_stream_and_sets()
    {
        var tags = ProjectionKeys.Shards.Select(ProjectionKeys.ShardTag).ToHashSet(StringComparer.Ordinal);
        Assert.Equal(ProjectionKeys.ShardCount, tags.Count);
        Assert.Equal(ProjectionKeys.ShardCount, ProjectionKeys.Shards.Select(_keys.UsageStream).Distinct().Count());
        Assert.Equal(ProjectionKeys.ShardCount, ProjectionKeys.Shards.Select(_keys.Reservations).Distinct().Count());
        Assert.Equal(ProjectionKeys.ShardCount, ProjectionKeys.Shards.Select(_keys.Leases).Distinct().Count());
    }

    [Fact]
    public void The_projections_shared_entries_share_one_tag_and_the_upstream_counters_another()
    {
        string[] meta = [_keys.Key("abc"), _keys.User("u1"), _keys.Upstreams, _keys.Epoch, _keys.Rebuilding];
        Assert.All(meta, k => Assert.Equal("meta", RedisKeySlot.HashTag(k)));
        string[] up = [_keys.UpstreamUsage("ns/a", 1), _keys.UpstreamUsage("ns/b", 2), _keys.UpstreamInFlight("ns/a"), _keys.UpstreamCooldown("ns/b"),
            _keys.UpstreamWindows("ns/c")];
        Assert.All(up, k => Assert.Equal("up", RedisKeySlot.HashTag(k)));
        // The operator's OAuth keys of one account share that account's tag.
        Assert.Equal("ns/a", RedisKeySlot.HashTag(_keys.UpstreamRefreshLease("ns/a")));
        Assert.Equal("ns/a", RedisKeySlot.HashTag(_keys.UpstreamRefreshRequest("ns/a")));
    }

    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a{tag}b", "tag")]
    [InlineData("a{}b{c}", "a{}b{c}")]
    [InlineData("a{{b}}", "{b")]
    [InlineData("a{b", "a{b")]
    public void The_hash_tag_is_what_Redis_Cluster_hashes(string key, string hashed) => Assert.Equal(hashed, RedisKeySlot.HashTag(key));
}
