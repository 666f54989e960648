using Gateway.Core.Projection;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// Leased traffic's flush and the lease's end (issue #11, items 1 and 3) against a real Redis: admissions, settlements
/// and releases of many requests reach Redis in one call; a lease that ends with requests in flight hands them over as
/// ordinary reservations, settled or expired as in exact mode; a reclaimed lease's flush writes nothing. In every case
/// the balance ends as the initial balance minus exactly what the usage events charged.
/// </summary>
public abstract class LeaseFlushTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : LeaseFlushTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : LeaseFlushTests
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

    private async Task<QuotaLease> GrantAsync(TimeSpan? ttl = null) =>
        (await _t.Enforcer.GrantLeaseAsync(new LeaseRequest
        {
            LeaseId = Guid.NewGuid().ToString("N"),
            Key = Key(),
            User = User(),
            Owner = "replica-a",
            Money = 100_000,
            Requests = 10,
            Tokens = 5_000,
            Ttl = ttl ?? TimeSpan.FromSeconds(30),
        })).Lease!;

    private LeasedAdmission Admission(string id, long reserved = 5_000) => new()
    {
        RequestId = id,
        KeyVersion = 1,
        ReservedMicros = reserved,
        EstimatedInputTokens = 100,
        MaxOutputTokens = 200,
        StartedAt = _t.Clock.GetUtcNow(),
        Model = "gpt|odd model",
        Route = "/v1/chat/completions",
        Upstream = "default/mock",
        PriceVersion = "test@1",
    };

    private UsageEvent Usage(string id, long micros, long output) => new()
    {
        RequestId = id,
        KeyId = "k1",
        KeyVersion = 1,
        UserId = "u1",
        Upstream = "default/mock",
        Model = "gpt-test",
        Route = "/v1/chat/completions",
        Tokens = new TokenCounts(100, 0, 0, output),
        Cost = Money.FromMicros(micros),
        PriceVersion = "test@1",
        StartedAt = _t.Clock.GetUtcNow(),
        Status = 200,
    };

    private async Task<Dictionary<string, string>> StreamEntryAsync(string requestId) =>
        (await _t.StreamEntriesAsync()).FirstOrDefault(f => f["request_id"] == requestId)
        ?? throw new Xunit.Sdk.XunitException($"no usage event for {requestId}");

    [Fact]
    public async Task A_flush_sent_again_after_its_reply_was_lost_writes_and_counts_nothing_twice()
    {
        var lease = await GrantAsync();
        var admit = new LeaseFlush { Lease = lease };
        admit.Admissions.AddRange([Admission("b1"), Admission("b2")]);
        await _t.Enforcer.FlushLeasedAsync([admit]);

        var settle = new LeaseFlush { Lease = lease };
        settle.Settlements.Add(new LeasedSettlement(Usage("b1", 20_000, 200), 20_000, AdmissionFlushed: true));
        settle.Releases.Add(new LeasedRelease("b2", AdmissionFlushed: true));
        var first = Assert.Single(await _t.Enforcer.FlushLeasedAsync([settle]));
        Assert.NotNull(first.StreamIds[0]);
        // The same flush again, as a replica does when the first call timed out after Redis ran it.
        var again = Assert.Single(await _t.Enforcer.FlushLeasedAsync([settle]));
        Assert.True(again.LeaseAlive);
        Assert.Null(again.StreamIds[0]);

        Assert.Single(await _t.UsageEventsAsync());
        var leaseKey = _t.Keys.Lease(lease.UserId, lease.LeaseId);
        Assert.Equal(20_000, await _t.HashLongAsync(leaseKey, "used_money"));
        Assert.Equal(300, await _t.HashLongAsync(leaseKey, "used_tokens"));
        Assert.Equal(2, await _t.HashLongAsync(leaseKey, "used_requests"));
        Assert.Equal(new LeaseRemainder(100_000 - 20_000, 10 - 2, 5_000 - 300), await _t.Enforcer.ReturnLeaseAsync(lease));
        Assert.Equal(Balance - 20_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_flush_writes_admissions_settlements_and_releases_of_many_requests_and_the_return_hands_over_what_is_in_flight()
    {
        var lease = await GrantAsync();
        var first = new LeaseFlush { Lease = lease };
        first.Admissions.AddRange([Admission("a1"), Admission("a2"), Admission("a3", reserved: 7_000)]);
        Assert.True(Assert.Single(await _t.Enforcer.FlushLeasedAsync([first])).LeaseAlive);
        Assert.Equal(3, (await _t.Redis.ExecuteAsync("HLEN", [_t.Keys.LeaseInflight(lease.UserId, lease.LeaseId)])).AsInt64());

        // a1 settles, a2 never reached an upstream, a4 was admitted and settled between two flushes (never in flight in Redis).
        var second = new LeaseFlush { Lease = lease };
        second.Settlements.Add(new LeasedSettlement(Usage("a1", 20_000, 200), 20_000, AdmissionFlushed: true));
        second.Settlements.Add(new LeasedSettlement(Usage("a4", 10_000, 100), 10_000, AdmissionFlushed: false));
        second.Releases.Add(new LeasedRelease("a2", AdmissionFlushed: true));
        var result = Assert.Single(await _t.Enforcer.FlushLeasedAsync([second]));
        Assert.True(result.LeaseAlive);
        Assert.All(result.StreamIds, Assert.NotNull);

        var leaseKey = _t.Keys.Lease(lease.UserId, lease.LeaseId);
        Assert.Equal(30_000, await _t.HashLongAsync(leaseKey, "used_money"));
        Assert.Equal(300 + 200, await _t.HashLongAsync(leaseKey, "used_tokens"));
        Assert.Equal(3, await _t.HashLongAsync(leaseKey, "used_requests"));
        var inflight = (await _t.Redis.ExecuteAsync("HKEYS", [_t.Keys.LeaseInflight(lease.UserId, lease.LeaseId)])).Items.Select(i => i.AsString()).ToList();
        Assert.Equal(new[] { "a3" }, inflight);
        var a1 = await StreamEntryAsync("a1");
        Assert.Equal(lease.LeaseId, a1["lease_id"]);
        Assert.Equal("0.02", a1["cost"]);
        Assert.Equal(2, (await _t.UsageEventsAsync()).Count);

        // The lease ends with a3 in flight: a3 becomes an ordinary reservation holding its 7,000 µ$ and 300 tokens.
        var back = await _t.Enforcer.ReturnLeaseAsync(lease);
        Assert.Equal(new LeaseRemainder(100_000 - 30_000 - 7_000, 10 - 3 - 1, 5_000 - 500 - 300), back);
        Assert.Equal(Balance - 37_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(7_000, await _t.HashLongAsync(_t.Keys.Reservation("u1", "a3"), "reserved"));
        Assert.Equal("gpt|odd model", (await _t.Redis.ExecuteAsync("HGET", [_t.Keys.Reservation("u1", "a3"), "model"])).AsString());
        Assert.Equal(1, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.False(await _t.ExistsAsync(_t.Keys.LeaseInflight(lease.UserId, lease.LeaseId)));

        // a3 settles as in exact mode: the balance ends at exactly what the three usage events charged.
        var reservation = new Reservation { RequestId = "a3", KeyId = "k1", UserId = "u1", BudgetKey = lease.BudgetKey, KeyVersion = 1 };
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(Settlement(reservation, 4_000, new TokenCounts(100, 0, 0, 50))));
        Assert.Equal(Balance - 34_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(34_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(3, (await _t.UsageEventsAsync()).Count);
        // Windows: a1, a2, a4 and a3 are four requests; tokens are what they used (300 + 200 + 150).
        Assert.Equal(4, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "rmc"));
        Assert.Equal(650, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "tmc"));
    }

    [Fact]
    public async Task A_dead_replicas_lease_is_reclaimed_and_its_requests_in_flight_are_charged_at_their_reservation()
    {
        var lease = await GrantAsync(ttl: TimeSpan.FromSeconds(10));
        var flush = new LeaseFlush { Lease = lease };
        flush.Admissions.AddRange([Admission("b1", reserved: 6_000), Admission("b2")]);
        flush.Settlements.Add(new LeasedSettlement(Usage("b0", 12_000, 300), 12_000, AdmissionFlushed: false));
        await _t.Enforcer.FlushLeasedAsync([flush]);

        // The owner dies; once the lease has expired the sweeper reclaims it and the reservation sweeper charges b1 and b2.
        _t.Clock.Advance(TimeSpan.FromSeconds(10));
        var back = await _t.Enforcer.ReclaimLeaseAsync(ProjectionKeys.ShardOf(lease.UserId), lease.LeaseId);
        Assert.Equal(100_000 - 12_000 - 6_000 - 5_000, back!.Value.Money);
        var expired = await _t.Enforcer.ExpireReservationsAsync(_t.Clock.GetUtcNow(), 10);
        Assert.Equal(new[] { "b1", "b2" }, expired.Order());

        Assert.Equal(Balance - 23_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        var events = await _t.UsageEventsAsync();
        Assert.Equal(new[] { "b0", "b1", "b2" }, events.Select(e => e.RequestId).Order());
        Assert.Equal(23_000, events.Sum(e => Money.ToMicrosCeiling(e.Cost)));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
    }

    [Fact]
    public async Task The_sweeper_reclaims_only_leases_past_their_expiry_and_grace()
    {
        var early = await GrantAsync(ttl: TimeSpan.FromSeconds(5));
        var later = await GrantAsync(ttl: TimeSpan.FromSeconds(20));
        _t.Clock.Advance(TimeSpan.FromSeconds(12));

        // With a 5 s grace: the first expired 7 s ago, the second has not expired.
        Assert.Equal(1, await _t.Enforcer.ReclaimExpiredLeasesAsync(_t.Clock.GetUtcNow() - TimeSpan.FromSeconds(5), 10));
        Assert.False(await _t.ExistsAsync(_t.Keys.Lease(early.UserId, early.LeaseId)));
        Assert.True(await _t.ExistsAsync(_t.Keys.Lease(later.UserId, later.LeaseId)));
        Assert.Equal(Balance - 100_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(0, await _t.Enforcer.ReclaimExpiredLeasesAsync(_t.Clock.GetUtcNow() - TimeSpan.FromSeconds(5), 10));
    }

    [Fact]
    public async Task A_flush_for_a_lease_that_is_gone_writes_nothing_and_says_so()
    {
        var gone = await GrantAsync(ttl: TimeSpan.FromSeconds(5));
        var live = await GrantAsync();
        _t.Clock.Advance(TimeSpan.FromSeconds(5));
        Assert.NotNull(await _t.Enforcer.ReclaimLeaseAsync(ProjectionKeys.ShardOf(gone.UserId), gone.LeaseId));
        var balance = await _t.GetLongAsync(_t.Keys.Balance("u1"));

        var toGone = new LeaseFlush { Lease = gone };
        toGone.Admissions.Add(Admission("c1"));
        toGone.Settlements.Add(new LeasedSettlement(Usage("c0", 9_000, 10), 9_000, AdmissionFlushed: false));
        var toLive = new LeaseFlush { Lease = live };
        toLive.Settlements.Add(new LeasedSettlement(Usage("c2", 8_000, 10), 8_000, AdmissionFlushed: false));
        var results = await _t.Enforcer.FlushLeasedAsync([toGone, toLive]);

        Assert.False(results[0].LeaseAlive);
        Assert.Equal(new string?[] { null }, results[0].StreamIds);
        Assert.True(results[1].LeaseAlive);
        Assert.NotNull(results[1].StreamIds[0]);
        Assert.False(await _t.ExistsAsync(_t.Keys.Lease(gone.UserId, gone.LeaseId)));
        Assert.False(await _t.ExistsAsync(_t.Keys.LeaseInflight(gone.UserId, gone.LeaseId)));
        Assert.Equal(new[] { "c2" }, (await _t.UsageEventsAsync()).Select(e => e.RequestId));
        Assert.Equal(balance, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }
}
