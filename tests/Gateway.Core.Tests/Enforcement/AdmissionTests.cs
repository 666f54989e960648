using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

public abstract class AdmissionTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : AdmissionTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : AdmissionTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        await _t.SetBalanceAsync("u1", 1_000_000_000);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    public static TheoryData<RejectionReason> WindowReasons =>
    [
        RejectionReason.KeyRpm, RejectionReason.KeyRpd, RejectionReason.UserRpm, RejectionReason.UserRpd,
        RejectionReason.KeyTpm, RejectionReason.KeyTpd, RejectionReason.UserTpm, RejectionReason.UserTpd,
    ];

    /// <summary>
    /// Requests limits are 3; token limits are 1000 with 300 estimated tokens per request, so both allow
    /// exactly three requests. User limits are exercised through two keys of the same user.
    /// </summary>
    [Theory]
    [MemberData(nameof(WindowReasons))]
    public async Task Each_window_rejects_at_exactly_its_limit_with_a_retry_after_that_is_exact(RejectionReason reason)
    {
        var keyLimits = new KeyLimits();
        var userLimits = new RateLimits();
        switch (reason)
        {
            case RejectionReason.KeyRpm: keyLimits.RequestsPerMinute = 3; break;
            case RejectionReason.KeyRpd: keyLimits.RequestsPerDay = 3; break;
            case RejectionReason.UserRpm: userLimits.RequestsPerMinute = 3; break;
            case RejectionReason.UserRpd: userLimits.RequestsPerDay = 3; break;
            case RejectionReason.KeyTpm: keyLimits.TokensPerMinute = 1000; break;
            case RejectionReason.KeyTpd: keyLimits.TokensPerDay = 1000; break;
            case RejectionReason.UserTpm: userLimits.TokensPerMinute = 1000; break;
            case RejectionReason.UserTpd: userLimits.TokensPerDay = 1000; break;
        }
        var user = User(limits: userLimits);
        var keyA = Key("ka", limits: keyLimits);
        var keyB = Key("kb", limits: keyLimits);
        var userScoped = reason is RejectionReason.UserRpm or RejectionReason.UserRpd or RejectionReason.UserTpm or RejectionReason.UserTpd;
        KeyProjection Pick(int i) => userScoped && i % 2 == 1 ? keyB : keyA;

        for (var i = 0; i < 3; i++)
        {
            var ok = await _t.Enforcer.AdmitAsync(Request(Pick(i), user, inputTokens: 100, maxOutputTokens: 200));
            Assert.True(ok.Allowed, $"request {i + 1} should be admitted");
        }

        var rejected = await _t.Enforcer.AdmitAsync(Request(Pick(3), user));
        Assert.Equal(reason, rejected.Reason);
        Assert.Null(rejected.Reservation);
        var retry = Assert.NotNull(rejected.RetryAfter);
        var isDay = reason is RejectionReason.KeyRpd or RejectionReason.UserRpd or RejectionReason.KeyTpd or RejectionReason.UserTpd;
        if (isDay)
            Assert.Equal(new DateTimeOffset(2026, 6, 11, 0, 0, 0, TimeSpan.Zero) - _t.Clock.Now, retry);

        // One millisecond before the retry-after the window is still full; at the retry-after it admits.
        var start = _t.Clock.Now;
        _t.Clock.Now = start + retry - TimeSpan.FromMilliseconds(1);
        Assert.Equal(reason, (await _t.Enforcer.AdmitAsync(Request(Pick(3), user))).Reason);
        _t.Clock.Now = start + retry;
        Assert.True((await _t.Enforcer.AdmitAsync(Request(Pick(3), user))).Allowed);
    }

    [Fact]
    public async Task Requests_per_minute_slide_over_the_previous_minute_and_reset_after_two()
    {
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 3 });
        var user = User();
        for (var i = 0; i < 3; i++) Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user))).Allowed);

        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.Equal(RejectionReason.KeyRpm, rejected.Reason);
        // 59 s to the next minute, then 20 s until the 3 previous-minute requests weigh 2 (ceil(3 × 40/60)).
        Assert.Equal(TimeSpan.FromSeconds(79), rejected.RetryAfter);
        Assert.Equal(new RateLimitStatus(3, 0, TimeSpan.FromSeconds(119)), rejected.Requests);

        // At the start of the next minute the previous minute still weighs fully: a fixed window would admit here.
        _t.Clock.Now = new DateTimeOffset(2026, 6, 10, 10, 1, 0, TimeSpan.Zero);
        Assert.Equal(RejectionReason.KeyRpm, (await _t.Enforcer.AdmitAsync(Request(key, user))).Reason);

        // Two minutes later nothing weighs any more: the full limit is back.
        _t.Clock.Now = new DateTimeOffset(2026, 6, 10, 10, 2, 0, TimeSpan.Zero);
        var fresh = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.True(fresh.Allowed);
        Assert.Equal(2, fresh.Requests!.Value.Remaining);
    }

    [Fact]
    public async Task Requests_per_day_reset_at_utc_midnight()
    {
        var key = Key(limits: new KeyLimits { RequestsPerDay = 2 });
        var user = User();
        _t.Clock.Now = new DateTimeOffset(2026, 6, 10, 23, 59, 0, TimeSpan.Zero);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user))).Allowed);
        var second = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.Equal(new RateLimitStatus(2, 0, TimeSpan.FromMinutes(1)), second.Requests);
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.Equal(RejectionReason.KeyRpd, rejected.Reason);
        Assert.Equal(TimeSpan.FromMinutes(1), rejected.RetryAfter);

        _t.Clock.Now = new DateTimeOffset(2026, 6, 11, 0, 0, 0, TimeSpan.Zero);
        var next = await _t.Enforcer.AdmitAsync(Request(key, user));
        Assert.True(next.Allowed);
        Assert.Equal(1, next.Requests!.Value.Remaining);
    }

    [Fact]
    public async Task Reports_the_most_restrictive_window_for_rate_limit_headers()
    {
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 10, RequestsPerDay = 100, TokensPerMinute = 10_000 });
        var user = User(limits: new RateLimits { RequestsPerMinute = 4 });
        var result = await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 1000, maxOutputTokens: 500));
        Assert.True(result.Allowed);
        Assert.Equal(new RateLimitStatus(4, 3, TimeSpan.FromSeconds(119)), result.Requests);
        Assert.Equal(new RateLimitStatus(10_000, 8_500, TimeSpan.FromSeconds(119)), result.Tokens);

        var unlimited = await _t.Enforcer.AdmitAsync(Request(Key("k2"), User("u1")));
        Assert.Null(unlimited.Requests);
        Assert.Null(unlimited.Tokens);
    }

    [Fact]
    public async Task Actual_tokens_replace_the_estimate_in_the_token_window_at_settlement()
    {
        var key = Key(limits: new KeyLimits { TokensPerMinute = 1000 });
        var user = User();
        var a = (await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 300))).Reservation!;
        var b = (await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 300))).Reservation!;
        Assert.Equal(RejectionReason.KeyTpm, (await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 300))).Reason);

        await _t.Enforcer.SettleAsync(Settlement(a, 10, new TokenCounts(100, 0, 0, 20)));
        await _t.Enforcer.SettleAsync(Settlement(b, 10, new TokenCounts(100, 0, 0, 30)));

        // 250 actual tokens counted; 400 + 400 more fit, a third 400 does not.
        var c = await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 300));
        Assert.Equal(new RateLimitStatus(1000, 350, TimeSpan.FromSeconds(119)), c.Tokens);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 200))).Allowed);
        Assert.Equal(RejectionReason.KeyTpm, (await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 300))).Reason);
    }

    [Fact]
    public async Task A_settlement_in_the_next_minute_takes_the_estimate_out_of_the_previous_minute()
    {
        var key = Key(limits: new KeyLimits { TokensPerMinute = 1000 });
        var user = User();
        var a = (await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 100, maxOutputTokens: 500))).Reservation!;
        _t.Clock.Now = new DateTimeOffset(2026, 6, 10, 10, 1, 30, TimeSpan.Zero);
        await _t.Enforcer.SettleAsync(Settlement(a, 10, new TokenCounts(60, 0, 0, 40)));

        // The previous minute no longer holds the 600 estimate; the current one holds the 100 actual tokens.
        var next = await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 400, maxOutputTokens: 500));
        Assert.True(next.Allowed);
        Assert.Equal(0, next.Tokens!.Value.Remaining);
    }

    [Fact]
    public async Task A_request_larger_than_the_token_window_gets_no_retry_after()
    {
        var key = Key(limits: new KeyLimits { TokensPerMinute = 1000 });
        var result = await _t.Enforcer.AdmitAsync(Request(key, User(), inputTokens: 800, maxOutputTokens: 800));
        Assert.Equal(RejectionReason.KeyTpm, result.Reason);
        Assert.Null(result.RetryAfter);
    }

    [Theory]
    [InlineData(RejectionReason.KeyConcurrency)]
    [InlineData(RejectionReason.UserConcurrency)]
    public async Task Concurrency_slots_are_freed_by_settlement(RejectionReason reason)
    {
        var user = User(limits: reason == RejectionReason.UserConcurrency ? new RateLimits { MaxConcurrent = 2 } : null);
        var keyLimits = reason == RejectionReason.KeyConcurrency ? new KeyLimits { MaxConcurrent = 2 } : null;
        var keyA = Key("ka", limits: keyLimits);
        var keyB = Key(reason == RejectionReason.UserConcurrency ? "kb" : "ka", limits: keyLimits);

        var first = (await _t.Enforcer.AdmitAsync(Request(keyA, user))).Reservation!;
        Assert.True((await _t.Enforcer.AdmitAsync(Request(keyB, user))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(keyA, user));
        Assert.Equal(reason, rejected.Reason);
        Assert.Equal(TimeSpan.FromSeconds(1), rejected.RetryAfter);

        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(Settlement(first, 500, new TokenCounts(10, 0, 0, 10))));
        Assert.True((await _t.Enforcer.AdmitAsync(Request(keyA, user))).Allowed);
        Assert.Equal(reason, (await _t.Enforcer.AdmitAsync(Request(keyB, user))).Reason);
    }

    [Fact]
    public async Task A_slot_never_released_by_a_killed_pod_expires_with_its_lease()
    {
        var key = Key(limits: new KeyLimits { MaxConcurrent = 1 });
        var user = User();
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, lease: TimeSpan.FromMinutes(5)))).Allowed);
        _t.Clock.Advance(TimeSpan.FromMinutes(5) - TimeSpan.FromMilliseconds(1));
        Assert.Equal(RejectionReason.KeyConcurrency, (await _t.Enforcer.AdmitAsync(Request(key, user))).Reason);
        _t.Clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user))).Allowed);
        Assert.Equal(1, await _t.CountAsync(_t.Keys.KeyInflight("u1", "k1")));
    }

    [Fact]
    public async Task Extending_a_lease_keeps_the_slot_held()
    {
        var key = Key(limits: new KeyLimits { MaxConcurrent = 1 });
        var user = User();
        var held = (await _t.Enforcer.AdmitAsync(Request(key, user, lease: TimeSpan.FromMinutes(1)))).Reservation!;
        _t.Clock.Advance(TimeSpan.FromSeconds(50));
        Assert.True(await _t.Enforcer.ExtendLeaseAsync(held, TimeSpan.FromMinutes(1)));
        _t.Clock.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(RejectionReason.KeyConcurrency, (await _t.Enforcer.AdmitAsync(Request(key, user))).Reason);
        Assert.Empty(await _t.Enforcer.ExpireReservationsAsync(_t.Clock.Now, 10));
    }

    [Fact]
    public async Task Key_token_limit_holds_the_estimate_and_never_suggests_a_retry()
    {
        var key = Key(limits: new KeyLimits { TokenLimit = 1000 });
        var user = User();
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 200, maxOutputTokens: 400))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 200, maxOutputTokens: 300));
        Assert.Equal(RejectionReason.KeyTokenLimit, rejected.Reason);
        Assert.Null(rejected.RetryAfter);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, inputTokens: 200, maxOutputTokens: 200))).Allowed);
        Assert.Equal(1000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "tokens"));
    }

    [Fact]
    public async Task Key_spend_limit_holds_reservations_in_flight()
    {
        var key = Key(limits: new KeyLimits { SpendLimit = 1.00m });
        var user = User();
        var first = (await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 600_000))).Reservation!;
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 600_000));
        Assert.Equal(RejectionReason.KeySpendLimit, rejected.Reason);
        Assert.Null(rejected.RetryAfter);

        // Settling at 100k frees 500k of the limit.
        await _t.Enforcer.SettleAsync(Settlement(first, 100_000, new TokenCounts(1, 0, 0, 1)));
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 600_000))).Allowed);
        Assert.Equal(700_000, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(RejectionReason.KeySpendLimit, (await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 300_001))).Reason);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 300_000))).Allowed);
    }

    [Fact]
    public async Task Rejects_request_when_reservation_exceeds_balance()
    {
        await _t.SetBalanceAsync("u1", 1_000_000);
        var key = Key();
        var user = User();
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 400_000))).Allowed);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 400_000))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 400_000));
        Assert.Equal(RejectionReason.InsufficientBalance, rejected.Reason);
        Assert.Null(rejected.RetryAfter);
        Assert.Equal(200_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 200_000))).Allowed);
        Assert.Equal(0, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_user_without_a_projected_balance_is_refused_as_a_missing_projection_and_nothing_is_counted()
    {
        // Every projected user has a balance key: none means Redis lost the projection (the proxy answers 503, retry),
        // not that the user has no money.
        var request = Request(Key("k9", "nobody"), User("nobody"), reservedMicros: 1);
        await Assert.ThrowsAsync<ProjectionMissingException>(() => _t.Enforcer.AdmitAsync(request));
        Assert.False(await _t.ExistsAsync(_t.Keys.Reservation(request.User.UserId, request.RequestId)));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.False(await _t.ExistsAsync(_t.Keys.UserRateCounters("nobody")));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyLifetime("u1", "k9")));

        // Once the balance is back (even at zero), the ordinary rule answers.
        await _t.SetBalanceAsync("nobody", 0);
        var result = await _t.Enforcer.AdmitAsync(Request(Key("k9", "nobody"), User("nobody"), reservedMicros: 1));
        Assert.Equal(RejectionReason.InsufficientBalance, result.Reason);
    }

    [Fact]
    public async Task Period_budget_rejects_until_the_period_ends()
    {
        var user = User(budget: new Budget { Amount = 1.00m, Period = BudgetPeriods.Daily, Timezone = "Europe/Berlin" });
        var key = Key();
        // 10:00:01 UTC = 12:00:01 in Berlin (CEST); the Berlin day ends at 22:00 UTC.
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 700_000))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 300_001));
        Assert.Equal(RejectionReason.BudgetExhausted, rejected.Reason);
        Assert.Equal(new DateTimeOffset(2026, 6, 10, 22, 0, 0, TimeSpan.Zero) - _t.Clock.Now, rejected.RetryAfter);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 300_000))).Allowed);
    }

    [Fact]
    public async Task A_budget_that_never_resets_gives_no_retry_after()
    {
        var user = User(budget: new Budget { Amount = 0.5m, Period = BudgetPeriods.None });
        var key = Key();
        Assert.True((await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 500_000))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(key, user, reservedMicros: 1));
        Assert.Equal(RejectionReason.BudgetExhausted, rejected.Reason);
        Assert.Null(rejected.RetryAfter);
    }

    [Fact]
    public async Task Reports_the_first_failing_check_and_changes_nothing_when_rejecting()
    {
        await _t.SetBalanceAsync("u1", 10);
        var key = Key(limits: new KeyLimits { RequestsPerDay = 0, MaxConcurrent = 0 });
        var result = await _t.Enforcer.AdmitAsync(Request(key, User(), reservedMicros: 1_000));
        Assert.Equal(RejectionReason.KeyRpd, result.Reason);
        Assert.Equal(10, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.Equal(0, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "rdc"));
        Assert.False(await _t.ExistsAsync(_t.Keys.KeyLifetime("u1", "k1")));
    }

    [Fact]
    public async Task Admission_records_the_reservation_for_a_later_charge()
    {
        var user = User(budget: new Budget { Amount = 5m, Period = BudgetPeriods.Monthly, Timezone = "America/New_York" });
        var result = await _t.Enforcer.AdmitAsync(Request(Key(), user, reservedMicros: 123_456, lease: TimeSpan.FromMinutes(2)));
        var r = Assert.IsType<Reservation>(result.Reservation);
        Assert.Equal(_t.Keys.BudgetSpent("u1", new DateTimeOffset(2026, 6, 1, 4, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)), r.BudgetKey);
        Assert.Equal(_t.Clock.Now + TimeSpan.FromMinutes(2), r.LeaseExpiresAt);
        Assert.Equal(123_456, await _t.GetLongAsync(r.BudgetKey));
        Assert.Equal(_t.Clock.Now.AddMinutes(2).ToUnixTimeMilliseconds(), await _t.HashLongAsync(_t.Keys.Reservation(r.UserId, r.RequestId), "expires_at_ms"));
        Assert.Equal(123_456, await _t.HashLongAsync(_t.Keys.Reservation(r.UserId, r.RequestId), "reserved"));
        Assert.Equal(1, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.Equal(1, await _t.CountAsync(_t.Keys.UserInflight("u1")));
    }

    [Fact]
    public async Task A_duplicate_request_id_is_refused()
    {
        var request = Request(Key(), User());
        Assert.True((await _t.Enforcer.AdmitAsync(request)).Allowed);
        await Assert.ThrowsAsync<InvalidOperationException>(() => _t.Enforcer.AdmitAsync(request));
        Assert.Equal(1_000_000_000 - 1_000, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }
}
