using Gateway.Core.Enforcement;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

public abstract class SettlementTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : SettlementTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : SettlementTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private static readonly Budget DailyBudget = new() { Amount = 10m, Period = BudgetPeriods.Daily, Timezone = "UTC" };
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        await _t.SetBalanceAsync("u1", 5_000_000);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    private async Task<Reservation> AdmitAsync(long reserved, long input = 100, long output = 900)
    {
        var result = await _t.Enforcer.AdmitAsync(Request(Key(limits: new KeyLimits { MaxConcurrent = 5 }), User(budget: DailyBudget), reserved, input, output));
        Assert.True(result.Allowed);
        return result.Reservation!;
    }

    [Fact]
    public async Task Settlement_replaces_the_reservation_with_the_actual_cost_everywhere()
    {
        var r = await AdmitAsync(800_000);
        Assert.Equal(4_200_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));

        var outcome = await _t.Enforcer.SettleAsync(Settlement(r, 123_457, new TokenCounts(100, 20, 5, 300)));

        Assert.Equal(SettleOutcome.Settled, outcome);
        Assert.Equal(5_000_000 - 123_457, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(123_457, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(123_457, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(425, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        Assert.Equal(425, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "tmc"));
        Assert.Equal(425, await _t.HashLongAsync(_t.Keys.UserRateCounters("u1"), "tdc"));
        Assert.Equal(0, await _t.CountAsync(_t.Keys.KeyInflight("u1", "k1")));
        Assert.Equal(0, await _t.CountAsync(_t.Keys.UserInflight("u1")));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.False(await _t.ExistsAsync(_t.Keys.Reservation(r.UserId, r.RequestId)));

        var e = Assert.Single(await _t.UsageEventsAsync());
        Assert.Equal(r.RequestId, e.RequestId);
        Assert.Equal(0.123457m, e.Cost);
        Assert.Equal(new TokenCounts(100, 20, 5, 300), e.Tokens);
        Assert.Equal(200, e.Status);
        Assert.False(e.Estimated);
    }

    [Fact]
    public async Task Settling_the_same_request_twice_charges_once()
    {
        var r = await AdmitAsync(800_000);
        var settlement = Settlement(r, 300_000, new TokenCounts(10, 0, 0, 10));
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(settlement));
        Assert.Equal(SettleOutcome.AlreadySettled, await _t.Enforcer.SettleAsync(settlement));
        Assert.Equal(4_700_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(300_000, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(300_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Single(await _t.UsageEventsAsync());
    }

    [Fact]
    public async Task An_actual_cost_above_the_reservation_is_charged_in_full()
    {
        await _t.SetBalanceAsync("u1", 100_000);
        var r = await AdmitAsync(100_000);
        await _t.Enforcer.SettleAsync(Settlement(r, 150_000, new TokenCounts(10, 0, 0, 10)));
        // The balance mirrors the ledger, so the excess is a debt rather than being dropped.
        Assert.Equal(-50_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(150_000, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(RejectionReason.InsufficientBalance, (await _t.Enforcer.AdmitAsync(Request(Key(), User(), 0))).Reason);
    }

    [Fact]
    public async Task Settlement_after_the_budget_period_ended_leaves_the_new_period_alone()
    {
        var r = await AdmitAsync(800_000);
        _t.Clock.Now = new DateTimeOffset(2026, 6, 11, 0, 0, 5, TimeSpan.Zero);
        var next = await AdmitAsync(200_000);
        Assert.NotEqual(r.BudgetKey, next.BudgetKey);

        await _t.Enforcer.SettleAsync(Settlement(r, 100_000, new TokenCounts(1, 0, 0, 1)));

        Assert.Equal(100_000, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(200_000, await _t.GetLongAsync(next.BudgetKey));
        Assert.Equal(5_000_000 - 100_000 - 200_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task Counters_rebuilt_below_the_reservation_are_not_refunded_below_zero()
    {
        var r = await AdmitAsync(800_000);
        // The operator rewrote the projection from the ledger while the request was in flight.
        await _t.Redis.ExecuteAsync("SET", [r.BudgetKey, 0]);
        await _t.Redis.ExecuteAsync("HSET", [_t.Keys.KeyLifetime("u1", "k1"), "spend", 0, "tokens", 0]);

        await _t.Enforcer.SettleAsync(Settlement(r, 100_000, new TokenCounts(1, 0, 0, 1)));

        Assert.Equal(0, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
    }

    [Fact]
    public async Task Release_refunds_everything_and_writes_no_usage_event()
    {
        var r = await AdmitAsync(800_000);
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.ReleaseAsync(r));
        Assert.Equal(SettleOutcome.AlreadySettled, await _t.Enforcer.ReleaseAsync(r));
        Assert.Equal(SettleOutcome.AlreadySettled, await _t.Enforcer.SettleAsync(Settlement(r, 1, new TokenCounts(1, 0, 0, 1))));

        Assert.Equal(5_000_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(0, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "tmc"));
        Assert.Equal(1, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "rmc"));
        Assert.Equal(0, await _t.CountAsync(_t.Keys.KeyInflight("u1", "k1")));
        Assert.Empty(await _t.UsageEventsAsync());
    }

    [Fact]
    public async Task Release_by_request_id_reads_the_reservation_first()
    {
        var r = await AdmitAsync(800_000);
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.ReleaseAsync(r.UserId, r.RequestId));
        Assert.Equal(SettleOutcome.AlreadySettled, await _t.Enforcer.ReleaseAsync(r.UserId, r.RequestId));
        Assert.Equal(5_000_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_copy_or_a_hand_built_reservation_settles_what_admission_held_for_its_request()
    {
        // A Reservation from admission carries what that admission stored, so settlement need not read it back;
        // a copy naming another request, or one built by hand, must settle what was held for its own request.
        var a = await AdmitAsync(800_000);
        var b = await AdmitAsync(600_000);
        var c = await AdmitAsync(400_000);
        Assert.Equal(3_200_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));

        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(
            Settlement(a with { RequestId = b.RequestId }, 100_000, new TokenCounts(100, 0, 0, 300))));
        var byHand = new Reservation { RequestId = c.RequestId, KeyId = "k1", UserId = "u1", BudgetKey = c.BudgetKey };
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(Settlement(byHand, 50_000, new TokenCounts(10, 0, 0, 40))));

        // a still holds 800k; b and c are charged their actual cost.
        Assert.Equal(5_000_000 - 800_000 - 150_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(950_000, await _t.GetLongAsync(a.BudgetKey));
        Assert.Equal(950_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(1000 + 450, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
        Assert.Equal(1000 + 450, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "tmc"));
        Assert.Equal(1000 + 450, await _t.HashLongAsync(_t.Keys.UserRateCounters("u1"), "tdc"));
        Assert.True(await _t.ExistsAsync(_t.Keys.Reservation(a.UserId, a.RequestId)));
    }

    [Fact]
    public async Task Settlement_refuses_a_usage_event_of_another_request()
    {
        var r = await AdmitAsync(800_000);
        var wrong = Settlement(r, 1, default) with { Usage = Settlement(r, 1, default).Usage with { RequestId = "other" } };
        await Assert.ThrowsAsync<ArgumentException>(() => _t.Enforcer.SettleAsync(wrong));
    }
}
