using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// Quota leases' grant and return scripts (issue #11, item 1) against a real Redis: a grant counts its slices where
/// an exact admission would (balance, budget, lifetime, request and token windows) when granted, so exact admissions
/// and other replicas see them; a pair near any limit is refused a lease (admitted exactly instead); returning gives
/// back exactly what was not used. Usage against a lease is written into its hash by hand here, as the usage flush
/// will (the hash fields are the scripts' contract).
/// </summary>
public abstract class LeaseGrantTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : LeaseGrantTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : LeaseGrantTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private const long Balance = 1_000_000_000;
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        await _t.SetBalanceAsync("u1", Balance);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    private static LeaseRequest Lease(KeyProjection key, UserProjection user, long money = 100_000, long requests = 10, long tokens = 5_000,
        TimeSpan? ttl = null) => new()
    {
        LeaseId = Guid.NewGuid().ToString("N"),
        Key = key,
        User = user,
        Owner = "replica-a",
        Money = money,
        Requests = requests,
        Tokens = tokens,
        Ttl = ttl ?? TimeSpan.FromSeconds(30),
    };

    private Task UseAsync(QuotaLease lease, long money, long requests, long tokens) =>
        _t.Redis.ExecuteAsync("HSET", [_t.Keys.Lease(lease.UserId, lease.LeaseId), "used_money", money, "used_requests", requests, "used_tokens", tokens]);

    [Fact]
    public async Task A_grant_counts_its_slices_at_once_and_a_return_gives_back_exactly_what_was_not_used()
    {
        var user = User(budget: new Budget { Amount = 100m, Period = "monthly" });
        var key = Key();
        var grant = await _t.Enforcer.GrantLeaseAsync(Lease(key, user));
        var lease = Assert.IsType<QuotaLease>(grant.Lease);
        Assert.Equal(RejectionReason.None, grant.Short);

        Assert.Equal(Balance - 100_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(100_000, await _t.GetLongAsync(lease.BudgetKey));
        Assert.NotEqual(_t.Keys.BudgetSpent("u1", "none"), lease.BudgetKey);
        Assert.Equal(100_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(5_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        foreach (var rate in new[] { _t.Keys.KeyRateCounters("u1", "k1"), _t.Keys.UserRateCounters("u1") })
        {
            Assert.Equal(10, await _t.HashLongAsync(rate, "rmc"));
            Assert.Equal(10, await _t.HashLongAsync(rate, "rdc"));
            Assert.Equal(5_000, await _t.HashLongAsync(rate, "tmc"));
            Assert.Equal(5_000, await _t.HashLongAsync(rate, "tdc"));
        }
        Assert.Equal(1, await _t.CountAllShardsAsync(_t.Keys.Leases));
        // The windows as the grant left them, for the headers of the requests admitted under it.
        Assert.Equal(new WindowCounts(10, 0, 10, 10, 0, 10, 5_000, 0, 5_000, 5_000, 0, 5_000), lease.Counts);

        // What it holds unused is known per user (every replica's leases), for usage reports.
        Assert.Equal(new LeaseHoldings(100_000, 100_000, 100_000, 5_000), await _t.Enforcer.LeaseHoldingsAsync("u1", "k1", lease.BudgetKey));
        Assert.Equal(new LeaseHoldings(100_000, 0, 0, 0), await _t.Enforcer.LeaseHoldingsAsync("u1", "k2", _t.Keys.BudgetSpent("u1", "none")));

        await UseAsync(lease, money: 30_000, requests: 3, tokens: 1_200);
        Assert.Equal(new LeaseHoldings(70_000, 70_000, 70_000, 3_800), await _t.Enforcer.LeaseHoldingsAsync("u1", "k1", lease.BudgetKey));
        var back = await _t.Enforcer.ReturnLeaseAsync(lease);
        Assert.Equal(new LeaseRemainder(70_000, 7, 3_800), back);

        Assert.Equal(Balance - 30_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(30_000, await _t.GetLongAsync(lease.BudgetKey));
        Assert.Equal(30_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(1_200, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        foreach (var rate in new[] { _t.Keys.KeyRateCounters("u1", "k1"), _t.Keys.UserRateCounters("u1") })
        {
            Assert.Equal(3, await _t.HashLongAsync(rate, "rmc"));
            Assert.Equal(3, await _t.HashLongAsync(rate, "rdc"));
            Assert.Equal(1_200, await _t.HashLongAsync(rate, "tmc"));
            Assert.Equal(1_200, await _t.HashLongAsync(rate, "tdc"));
        }
        Assert.False(await _t.ExistsAsync(_t.Keys.Lease(lease.UserId, lease.LeaseId)));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
        Assert.False(await _t.ExistsAsync(_t.Keys.UserLeases("u1")));
        Assert.Equal(default, await _t.Enforcer.LeaseHoldingsAsync("u1", "k1", lease.BudgetKey));

        // Returning twice gives back nothing more.
        Assert.Null(await _t.Enforcer.ReturnLeaseAsync(lease));
        Assert.Equal(Balance - 30_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task Exact_admissions_see_a_held_lease_so_a_window_is_never_exceeded_in_total()
    {
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 20 });
        var user = User();
        var lease = (await _t.Enforcer.GrantLeaseAsync(Lease(key, user, requests: 5, tokens: 0)))!.Lease!;

        for (var i = 0; i < 15; i++) Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user))).Allowed, $"exact request {i + 1}");
        var refused = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.Equal(RejectionReason.KeyRpm, refused.Reason);

        // Two of the lease's five were used; the three others go back and can be admitted exactly.
        await UseAsync(lease, money: 0, requests: 2, tokens: 0);
        Assert.Equal(3, (await _t.Enforcer.ReturnLeaseAsync(lease))!.Value.Requests);
        for (var i = 0; i < 3; i++) Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user))).Allowed, $"request {i + 1} after the return");
        Assert.Equal(RejectionReason.KeyRpm, (await _t.Enforcer.AdmitAsync(Request(key, user))).Reason);
    }

    public static TheoryData<RejectionReason> EdgeReasons =>
    [
        RejectionReason.KeyRpm, RejectionReason.UserRpd, RejectionReason.KeyTpm, RejectionReason.UserTpd,
        RejectionReason.KeyTokenLimit, RejectionReason.KeySpendLimit, RejectionReason.InsufficientBalance, RejectionReason.BudgetExhausted,
    ];

    [Theory]
    [MemberData(nameof(EdgeReasons))]
    public async Task A_pair_near_any_limit_gets_no_lease_and_nothing_is_counted(RejectionReason reason)
    {
        // Each limit leaves room for 3 slices; the factor asks for 4.
        var keyLimits = new KeyLimits();
        var userLimits = new RateLimits();
        Budget? budget = null;
        switch (reason)
        {
            case RejectionReason.KeyRpm: keyLimits.RequestsPerMinute = 30; break;
            case RejectionReason.UserRpd: userLimits.RequestsPerDay = 30; break;
            case RejectionReason.KeyTpm: keyLimits.TokensPerMinute = 15_000; break;
            case RejectionReason.UserTpd: userLimits.TokensPerDay = 15_000; break;
            case RejectionReason.KeyTokenLimit: keyLimits.TokenLimit = 15_000; break;
            case RejectionReason.KeySpendLimit: keyLimits.SpendLimit = 0.3m; break;
            case RejectionReason.InsufficientBalance: await _t.SetBalanceAsync("u1", 300_000); break;
            case RejectionReason.BudgetExhausted: budget = new Budget { Amount = 0.3m, Period = "daily" }; break;
        }
        var before = await _t.GetLongAsync(_t.Keys.Balance("u1"));
        var grant = await _t.Enforcer.GrantLeaseAsync(Lease(Key(limits: keyLimits), User(limits: userLimits, budget: budget)));

        Assert.False(grant.Granted);
        Assert.Equal(reason, grant.Short);
        Assert.Equal(before, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyRateCounters("u1", "k1")));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyLifetime("u1", "k1")));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));

        // With room for four slices the same pair is granted.
        var roomy = reason switch
        {
            RejectionReason.KeyRpm or RejectionReason.UserRpd => Lease(Key(limits: keyLimits), User(limits: userLimits, budget: budget), requests: 7),
            RejectionReason.KeyTpm or RejectionReason.UserTpd or RejectionReason.KeyTokenLimit => Lease(Key(limits: keyLimits), User(limits: userLimits, budget: budget), tokens: 3_750),
            _ => Lease(Key(limits: keyLimits), User(limits: userLimits, budget: budget), money: 75_000),
        };
        Assert.True((await _t.Enforcer.GrantLeaseAsync(roomy)).Granted);
    }

    [Fact]
    public async Task A_lease_ends_with_its_minute_and_what_it_did_not_use_leaves_that_minute_when_returned_later()
    {
        // T0 is 10:00:01; 45 s later a 30 s lease would outlive the minute, so with a minute limit it ends at 10:01:00.
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 1_000 });
        var user = User();
        Assert.Equal(T0.AddSeconds(30), (await _t.Enforcer.GrantLeaseAsync(Lease(key, user, ttl: TimeSpan.FromSeconds(30))))!.Lease!.ExpiresAt);
        _t.Clock.Advance(TimeSpan.FromSeconds(44));
        var late = (await _t.Enforcer.GrantLeaseAsync(Lease(key, user, requests: 6, tokens: 600)))!.Lease!;
        Assert.Equal(new DateTimeOffset(2026, 6, 10, 10, 1, 0, TimeSpan.Zero), late.ExpiresAt);
        // Without minute limits (a day limit: the day's end) it lives its whole TTL across the minute.
        var daily = (await _t.Enforcer.GrantLeaseAsync(Lease(Key("k2", limits: new KeyLimits { RequestsPerDay = 100_000 }), user)))!.Lease!;
        Assert.Equal(_t.Clock.GetUtcNow().AddSeconds(30), daily.ExpiresAt);

        // Returned in the next minute: the previous minute's count and today's lose the unused part.
        _t.Clock.Advance(TimeSpan.FromSeconds(20));
        await UseAsync(late, money: 0, requests: 1, tokens: 100);
        await _t.Enforcer.ReturnLeaseAsync(late);
        var rate = _t.Keys.KeyRateCounters("u1", "k1");
        Assert.Equal(0, await _t.HashLongAsync(rate, "rmc"));
        Assert.Equal(10 + 1, await _t.HashLongAsync(rate, "rmp"));
        Assert.Equal(10 + 1, await _t.HashLongAsync(rate, "rdc"));
        Assert.Equal(5_000 + 100, await _t.HashLongAsync(rate, "tmp"));
    }

    [Fact]
    public async Task The_sweeper_reclaims_a_lease_only_once_it_has_expired()
    {
        var lease = (await _t.Enforcer.GrantLeaseAsync(Lease(Key(), User(), ttl: TimeSpan.FromSeconds(10))))!.Lease!;
        await UseAsync(lease, money: 40_000, requests: 4, tokens: 400);

        Assert.Null(await _t.Enforcer.ReclaimLeaseAsync(ProjectionKeys.ShardOf(lease.UserId), lease.LeaseId));
        Assert.True(await _t.ExistsAsync(_t.Keys.Lease(lease.UserId, lease.LeaseId)));

        _t.Clock.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(new LeaseRemainder(60_000, 6, 4_600), await _t.Enforcer.ReclaimLeaseAsync(ProjectionKeys.ShardOf(lease.UserId), lease.LeaseId));
        Assert.Equal(Balance - 40_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Null(await _t.Enforcer.ReclaimLeaseAsync(ProjectionKeys.ShardOf(lease.UserId), lease.LeaseId));
        Assert.Null(await _t.Enforcer.ReturnLeaseAsync(lease));
    }

    [Fact]
    public async Task Requests_that_cost_more_than_the_lease_are_charged_the_difference_on_return()
    {
        var lease = (await _t.Enforcer.GrantLeaseAsync(Lease(Key(), User(), money: 100_000)))!.Lease!;
        await UseAsync(lease, money: 130_000, requests: 10, tokens: 5_000);

        Assert.Equal(-30_000, (await _t.Enforcer.ReturnLeaseAsync(lease))!.Value.Money);
        Assert.Equal(Balance - 130_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(130_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
    }

    [Fact]
    public async Task Without_the_projection_nothing_is_leased_and_nothing_is_written_back()
    {
        await _t.Redis.ExecuteAsync("DEL", [_t.Keys.Balance("u2")]);
        await Assert.ThrowsAsync<ProjectionMissingException>(() => _t.Enforcer.GrantLeaseAsync(Lease(Key("k2", "u2"), User("u2"))));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyRateCounters("u1", "k2")));

        // A lease granted before Redis lost the user's money: its return must not recreate a balance the operator's
        // rebuild will seed from the ledger (only values Redis lacks are seeded).
        var lease = (await _t.Enforcer.GrantLeaseAsync(Lease(Key(), User())))!.Lease!;
        await _t.Redis.ExecuteAsync("DEL", [_t.Keys.Balance("u1"), _t.Keys.KeyLifetime("u1", "k1")]);
        Assert.Equal(new LeaseRemainder(0, 0, 0), await _t.Enforcer.ReturnLeaseAsync(lease));
        Assert.False(await _t.ExistsAsync(_t.Keys.Balance("u1")));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyLifetime("u1", "k1")));
        Assert.False(await _t.ExistsAsync(_t.Keys.Lease(lease.UserId, lease.LeaseId)));
    }
}
