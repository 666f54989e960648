using Gateway.Core.Enforcement;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

public abstract class ReservationExpiryTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : ReservationExpiryTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : ReservationExpiryTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private static readonly TimeSpan Lease = TimeSpan.FromMinutes(10);
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        await _t.SetBalanceAsync("u1", 5_000_000);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    private async Task<Reservation> AdmitAsync(long reserved)
    {
        var user = User(limits: new RateLimits { MaxConcurrent = 1 }, budget: new Budget { Amount = 10m, Period = BudgetPeriods.Monthly });
        var request = Request(Key(), user, reserved, inputTokens: 250, maxOutputTokens: 750, lease: Lease) with { Upstream = "default/mock" };
        var result = await _t.Enforcer.AdmitAsync(request);
        Assert.True(result.Allowed);
        return result.Reservation!;
    }

    [Fact]
    public async Task An_orphaned_reservation_is_charged_its_reserved_amount_with_an_estimated_usage_event()
    {
        var r = await AdmitAsync(700_000);

        Assert.Empty(await _t.Enforcer.ExpireReservationsAsync(r.LeaseExpiresAt.AddMilliseconds(-1), 100));
        var expired = await _t.Enforcer.ExpireReservationsAsync(r.LeaseExpiresAt, 100);

        Assert.Equal([r.RequestId], expired);
        Assert.Equal(4_300_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(700_000, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(700_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(1000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        Assert.Equal(0, await _t.CountAsync(_t.Keys.UserInflight("u1")));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));

        var e = Assert.Single(await _t.UsageEventsAsync());
        Assert.Equal(r.RequestId, e.RequestId);
        Assert.Equal("k1", e.KeyId);
        Assert.Equal("u1", e.UserId);
        Assert.Equal(1, e.KeyVersion);
        Assert.Equal("gpt-test", e.Model);
        Assert.Equal("default/mock", e.Upstream);
        Assert.Equal("test@1", e.PriceVersion);
        Assert.Equal(0.7m, e.Cost);
        Assert.Equal(0, e.Status);
        Assert.True(e.Estimated);
        Assert.Equal(new TokenCounts(250, 0, 0, 750), e.Tokens);
        Assert.Equal(r.StartedAt, e.StartedAt);
        Assert.Equal((int)Lease.TotalMilliseconds, e.DurationMs);
    }

    [Fact]
    public async Task Settlement_after_expiry_is_a_no_op()
    {
        var r = await AdmitAsync(700_000);
        await _t.Enforcer.ExpireReservationsAsync(r.LeaseExpiresAt, 100);

        var outcome = await _t.Enforcer.SettleAsync(Settlement(r, 10_000, new TokenCounts(1, 0, 0, 1)));

        Assert.Equal(SettleOutcome.AlreadySettled, outcome);
        Assert.Equal(4_300_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Single(await _t.UsageEventsAsync());
    }

    [Fact]
    public async Task Expiry_after_settlement_is_a_no_op()
    {
        var r = await AdmitAsync(700_000);
        await _t.Enforcer.SettleAsync(Settlement(r, 10_000, new TokenCounts(1, 0, 0, 1)));

        Assert.Empty(await _t.Enforcer.ExpireReservationsAsync(r.LeaseExpiresAt.AddHours(1), 100));
        Assert.Equal(4_990_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        var e = Assert.Single(await _t.UsageEventsAsync());
        Assert.False(e.Estimated);
    }

    [Fact]
    public async Task Expiry_racing_settlement_charges_each_request_exactly_once()
    {
        // Many reservations, all past their lease; the ledger writer and the proxy end them at the same time.
        var reservations = new List<Reservation>();
        var user = User(budget: new Budget { Amount = 100m, Period = BudgetPeriods.Monthly });
        for (var i = 0; i < 60; i++)
            reservations.Add((await _t.Enforcer.AdmitAsync(Request(Key(), user, 50_000, lease: Lease))).Reservation!);
        var expiredAt = _t.Clock.Now + Lease;
        _t.Clock.Now = expiredAt;

        var settle = Task.WhenAll(reservations.Select(r => _t.Enforcer.SettleAsync(Settlement(r, 20_000, new TokenCounts(5, 0, 0, 5)))));
        var expire = _t.Enforcer.ExpireReservationsAsync(expiredAt, 1000);
        var outcomes = await settle;
        var expired = await expire;

        var settled = outcomes.Count(o => o == SettleOutcome.Settled);
        Assert.Equal(60, settled + expired.Count);
        var events = await _t.UsageEventsAsync();
        Assert.Equal(60, events.Count);
        Assert.Equal(60, events.Select(e => e.RequestId).Distinct().Count());
        Assert.Equal(expired.Count, events.Count(e => e.Estimated));
        Assert.Equal(5_000_000 - settled * 20_000 - expired.Count * 50_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
    }

    [Fact]
    public async Task Expiry_takes_at_most_the_requested_number()
    {
        var user = User();
        for (var i = 0; i < 5; i++) Assert.True((await _t.Enforcer.AdmitAsync(Request(Key(), user, 1_000, lease: Lease))).Allowed);
        var now = _t.Clock.Now + Lease;
        Assert.Equal(3, (await _t.Enforcer.ExpireReservationsAsync(now, 3)).Count);
        Assert.Equal(2, (await _t.Enforcer.ExpireReservationsAsync(now, 3)).Count);
        Assert.Empty(await _t.Enforcer.ExpireReservationsAsync(now, 3));
        Assert.Equal(5, (await _t.UsageEventsAsync()).Count);
    }
}
