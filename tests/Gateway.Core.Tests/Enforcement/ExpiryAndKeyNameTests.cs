using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>The TTLs the scripts set without a PEXPIRE per call, and the Enforcer's cached key names.</summary>
public sealed class ExpiryAndKeyNameTests : IAsyncLifetime
{
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateAsync();
        await _t.SetBalanceAsync("u1", 1_000_000_000);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    private async Task<TimeSpan> TtlAsync(string key) => TimeSpan.FromMilliseconds((await _t.Redis.ExecuteAsync("PTTL", [key])).AsInt64());

    private static void AssertNear(TimeSpan expected, TimeSpan actual) =>
        Assert.InRange(actual, expected - TimeSpan.FromSeconds(30), expected);

    [Fact]
    public async Task Counters_and_slots_get_a_ttl_on_their_first_write_of_a_day_and_keep_it_through_settlement()
    {
        var user = User(budget: new Budget { Amount = 10m, Period = BudgetPeriods.Daily, Timezone = "UTC" });
        var lease = TimeSpan.FromMinutes(10);
        var r = (await _t.Enforcer.AdmitAsync(Request(Key(limits: new KeyLimits { MaxConcurrent = 5 }), user, lease: lease))).Reservation!;

        // T0 is 10:00:01 UTC: the rate hashes live to the end of tomorrow, the slots a lease plus two days.
        var endOfTomorrow = new DateTimeOffset(2026, 6, 12, 0, 0, 0, TimeSpan.Zero) - _t.Clock.Now;
        AssertNear(endOfTomorrow, await TtlAsync(_t.Keys.KeyRateCounters("u1", "k1")));
        AssertNear(endOfTomorrow, await TtlAsync(_t.Keys.UserRateCounters("u1")));
        AssertNear(lease + 2 * Day, await TtlAsync(_t.Keys.KeyInflight("u1", "k1")));
        AssertNear(lease + 2 * Day, await TtlAsync(_t.Keys.UserInflight("u1")));
        // The budget period (the UTC day) plus a week.
        AssertNear(new DateTimeOffset(2026, 6, 11, 0, 0, 0, TimeSpan.Zero) - _t.Clock.Now + 7 * Day, await TtlAsync(r.BudgetKey));

        _t.Clock.Advance(TimeSpan.FromSeconds(5));
        await _t.Enforcer.SettleAsync(Settlement(r, 10, new TokenCounts(1, 0, 0, 1)));
        Assert.True(await TtlAsync(_t.Keys.KeyRateCounters("u1", "k1")) > TimeSpan.Zero);
        Assert.True(await TtlAsync(r.BudgetKey) > TimeSpan.Zero);

        // The first admission of the next day moves the rate hashes' expiry to the end of the day after.
        _t.Clock.Now = new DateTimeOffset(2026, 6, 11, 0, 0, 1, TimeSpan.Zero);
        await _t.Enforcer.AdmitAsync(Request(Key(limits: new KeyLimits { MaxConcurrent = 5 }), user, lease: lease));
        AssertNear(2 * Day - TimeSpan.FromSeconds(1), await TtlAsync(_t.Keys.KeyRateCounters("u1", "k1")));
        AssertNear(lease + 2 * Day, await TtlAsync(_t.Keys.KeyInflight("u1", "k1")));
    }

    [Fact]
    public async Task A_settlement_that_recreates_an_expired_rate_hash_gives_it_a_ttl()
    {
        var r = (await _t.Enforcer.AdmitAsync(Request(Key(), User()))).Reservation!;
        await _t.Redis.ExecuteAsync("DEL", [_t.Keys.KeyRateCounters("u1", "k1")]);
        await _t.Enforcer.SettleAsync(Settlement(r, 10, new TokenCounts(1, 0, 0, 1)));
        Assert.Equal(2, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "tmc"));
        Assert.True(await TtlAsync(_t.Keys.KeyRateCounters("u1", "k1")) > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_duplicate_request_id_leaves_the_first_reservation_intact()
    {
        var request = Request(Key(), User());
        var first = (await _t.Enforcer.AdmitAsync(request)).Reservation!;
        await Assert.ThrowsAsync<InvalidOperationException>(() => _t.Enforcer.AdmitAsync(request));
        Assert.Equal(1, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.Equal(1, await _t.CountAsync(_t.Keys.KeyInflight("u1", "k1")));
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(Settlement(first, 10, new TokenCounts(1, 0, 0, 1))));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
    }

    [Fact]
    public async Task A_reservation_copied_with_another_request_id_settles_that_request()
    {
        var a = (await _t.Enforcer.AdmitAsync(Request(Key(), User()))).Reservation!;
        var b = (await _t.Enforcer.AdmitAsync(Request(Key(), User()))).Reservation!;
        // A copy keeps the key name cached for the original id; it must not be used for the new one.
        var copy = a with { RequestId = b.RequestId };
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.ReleaseAsync(copy));
        Assert.False(await _t.ExistsAsync(_t.Keys.Reservation(b.UserId, b.RequestId)));
        Assert.True(await _t.ExistsAsync(_t.Keys.Reservation(a.UserId, a.RequestId)));
    }

    [Fact]
    public async Task A_reservation_built_by_hand_settles_like_one_from_admission()
    {
        var admitted = (await _t.Enforcer.AdmitAsync(Request(Key(), User()))).Reservation!;
        var rebuilt = new Reservation
        {
            RequestId = admitted.RequestId, KeyId = admitted.KeyId, UserId = admitted.UserId, BudgetKey = admitted.BudgetKey,
            KeyVersion = admitted.KeyVersion, StartedAt = admitted.StartedAt,
        };
        Assert.Equal(SettleOutcome.Settled, await _t.Enforcer.SettleAsync(Settlement(rebuilt, 10, new TokenCounts(1, 0, 0, 1))));
        Assert.False(await _t.ExistsAsync(_t.Keys.Reservation(admitted.UserId, admitted.RequestId)));
    }

    [Fact]
    public void The_key_name_cache_starts_over_instead_of_growing_without_bound()
    {
        var keys = new ProjectionKeys("p:");
        var cache = new KeyNameCache(keys);
        for (var i = 0; i <= KeyNameCache.MaxEntries + 10; i++) cache.ForKey("u1", "k" + i);
        Assert.InRange(cache.Count, 1, KeyNameCache.MaxEntries);
        Assert.Equal(keys.KeyRateCounters("u1", "k7"), cache.ForKey("u1", "k7").RateCounters);
        Assert.Equal(keys.KeyLifetime("u1", "k7"), cache.ForKey("u1", "k7").Lifetime);

        var user = cache.ForUser("u1");
        Assert.Equal(keys.Balance("u1"), user.Balance);
        Assert.Equal(keys.BudgetSpent("u1", "none"), user.BudgetNone);
        var june = new BudgetPeriod(new DateTimeOffset(2026, 6, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 7, 1, 0, 0, 0, TimeSpan.Zero));
        var july = new BudgetPeriod(june.End, new DateTimeOffset(2026, 8, 1, 0, 0, 0, TimeSpan.Zero));
        Assert.Equal(keys.BudgetSpent("u1", june.Id), user.BudgetKey(june));
        Assert.Equal(keys.BudgetSpent("u1", july.Id), user.BudgetKey(july));
        Assert.Equal(keys.BudgetSpent("u1", june.Id), user.BudgetKey(june));
    }
}

public sealed class UsageStreamFieldsTests
{
    [Fact]
    public void Settlement_writes_exactly_the_fields_of_the_usage_event()
    {
        var events = new[]
        {
            new UsageEvent
            {
                RequestId = "r1", KeyId = "k1", KeyVersion = 3, UserId = "u1", Upstream = "default/up", Model = "m", Route = "/v1/x",
                Tokens = new TokenCounts(1, 2, 3, 4), Cost = 0.12345678m, PriceVersion = "p@1",
                StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_781_000_000_123), DurationMs = 5, TimeToFirstByteMs = 7,
                Status = 200, Estimated = true, Streamed = true,
            },
            new UsageEvent { RequestId = "r2", KeyId = "k2", UserId = "u2" },
        };
        foreach (var e in events)
        {
            var buffer = new Gateway.Core.Redis.RedisArgBuffer();
            UsageStreamFields.AddTo(buffer, e);
            Assert.Equal(e.ToStreamFields().Select(a => a.ToString()), buffer.Select(a => a.ToString()));
        }
    }
}
