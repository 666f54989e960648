using Gateway.Core.Enforcement;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

public sealed class BudgetCalendarTests
{
    private static DateTimeOffset Utc(int y, int mo, int d, int h, int mi = 0) => new(y, mo, d, h, mi, 0, TimeSpan.Zero);

    [Theory]
    // Berlin, spring forward on 2026-03-29: the local day is 23 hours long.
    [InlineData("Europe/Berlin", "daily", "2026-03-29T12:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z")]
    // Berlin, fall back on 2026-10-25: 25 hours.
    [InlineData("Europe/Berlin", "daily", "2026-10-25T12:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")]
    // A minute before and at local midnight.
    [InlineData("Europe/Berlin", "daily", "2026-10-25T22:59:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")]
    [InlineData("Europe/Berlin", "daily", "2026-10-25T23:00:00Z", "2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z")]
    // New York week containing the spring-forward Sunday (2026-03-08): Monday 00:00 EST to Monday 00:00 EDT.
    [InlineData("America/New_York", "weekly", "2026-03-08T12:00:00Z", "2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z")]
    // Sunday evening local time is still the week that started on Monday (UTC is already Monday).
    [InlineData("America/New_York", "weekly", "2026-03-09T03:30:00Z", "2026-03-02T05:00:00Z", "2026-03-09T04:00:00Z")]
    // New York month with the fall-back day: November starts in EDT and ends in EST.
    [InlineData("America/New_York", "monthly", "2026-11-15T12:00:00Z", "2026-11-01T04:00:00Z", "2026-12-01T05:00:00Z")]
    [InlineData("Europe/Berlin", "monthly", "2026-03-31T22:30:00Z", "2026-03-31T22:00:00Z", "2026-04-30T22:00:00Z")]
    // Havana skips midnight on 2026-03-08 (00:00 -> 01:00): the day starts at 01:00 CDT.
    [InlineData("America/Havana", "daily", "2026-03-08T12:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z")]
    [InlineData("America/Havana", "daily", "2026-03-08T04:59:00Z", "2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z")]
    // Havana repeats midnight on 2026-11-01 (01:00 CDT -> 00:00 CST): the day starts at the first midnight.
    [InlineData("America/Havana", "daily", "2026-11-01T05:30:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z")]
    [InlineData("America/Havana", "daily", "2026-11-01T03:59:00Z", "2026-10-31T04:00:00Z", "2026-11-01T04:00:00Z")]
    [InlineData("UTC", "weekly", "2026-06-14T23:59:00Z", "2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z")]
    [InlineData("", "monthly", "2026-12-31T23:59:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z")]
    public void Periods_are_calendar_aligned_in_the_budget_time_zone(string zone, string period, string now, string start, string end)
    {
        var p = BudgetCalendar.CurrentPeriod(period, zone, DateTimeOffset.Parse(now, System.Globalization.CultureInfo.InvariantCulture));
        Assert.NotNull(p);
        Assert.Equal(DateTimeOffset.Parse(start, System.Globalization.CultureInfo.InvariantCulture), p.Value.Start);
        Assert.Equal(DateTimeOffset.Parse(end, System.Globalization.CultureInfo.InvariantCulture), p.Value.End);
    }

    [Theory]
    [InlineData("Europe/Berlin")]
    [InlineData("America/New_York")]
    [InlineData("America/Havana")]
    [InlineData("Australia/Lord_Howe")]
    public void Consecutive_daily_periods_tile_the_year_without_gaps_or_overlaps(string zone)
    {
        var t = Utc(2026, 1, 1, 12);
        var current = BudgetCalendar.CurrentPeriod("daily", zone, t)!.Value;
        for (var day = 0; day < 366; day++)
        {
            var next = BudgetCalendar.CurrentPeriod("daily", zone, current.End)!.Value;
            Assert.Equal(current.End, next.Start);
            var hours = (next.End - next.Start).TotalHours;
            Assert.InRange(hours, 23, 25);
            current = next;
        }
    }

    [Fact]
    public void Period_none_never_resets()
    {
        Assert.Null(BudgetCalendar.CurrentPeriod("none", "Europe/Berlin", Utc(2026, 1, 1, 0)));
        Assert.Null(BudgetCalendar.CurrentPeriod((Budget?)null, Utc(2026, 1, 1, 0)));
    }

    [Fact]
    public void Unknown_zones_and_periods_are_errors()
    {
        Assert.Throws<TimeZoneNotFoundException>(() => BudgetCalendar.CurrentPeriod("daily", "Mars/Olympus_Mons", Utc(2026, 1, 1, 0)));
        Assert.Throws<ArgumentException>(() => BudgetCalendar.CurrentPeriod("hourly", "UTC", Utc(2026, 1, 1, 0)));
    }
}

/// <summary>Budget rollover through the Enforcer on DST days.</summary>
public sealed class BudgetRolloverTests : IAsyncLifetime
{
    private EnforcementTestContext _t = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateAsync(new DateTimeOffset(2026, 3, 29, 21, 0, 0, TimeSpan.Zero));
        await _t.SetBalanceAsync("u1", 100_000_000);
    }

    public async Task DisposeAsync() => await _t.DisposeAsync();

    [Fact]
    public async Task A_daily_budget_in_Berlin_resets_at_local_midnight_after_a_23_hour_day()
    {
        var user = User(budget: new Budget { Amount = 1m, Period = BudgetPeriods.Daily, Timezone = "Europe/Berlin" });
        // 2026-03-29 21:59 UTC is 23:59 CEST.
        _t.Clock.Now = new DateTimeOffset(2026, 3, 29, 21, 59, 0, TimeSpan.Zero);
        var first = (await _t.Enforcer.AdmitAsync(Request(Key(), user, 900_000))).Reservation!;
        await _t.Enforcer.SettleAsync(Settlement(first, 900_000, new TokenCounts(1, 0, 0, 1)));

        var rejected = await _t.Enforcer.AdmitAsync(Request(Key(), user, 200_000));
        Assert.Equal(RejectionReason.BudgetExhausted, rejected.Reason);
        Assert.Equal(TimeSpan.FromMinutes(1), rejected.RetryAfter);

        _t.Clock.Now = new DateTimeOffset(2026, 3, 29, 22, 0, 0, TimeSpan.Zero);
        var next = await _t.Enforcer.AdmitAsync(Request(Key(), user, 200_000));
        Assert.True(next.Allowed);
        Assert.NotEqual(first.BudgetKey, next.Reservation!.BudgetKey);
        Assert.Equal(900_000, await _t.GetLongAsync(first.BudgetKey));
        Assert.Equal(200_000, await _t.GetLongAsync(next.Reservation.BudgetKey));
    }

    [Fact]
    public async Task An_unknown_budget_time_zone_falls_back_to_utc_periods_instead_of_failing_requests()
    {
        var user = User(budget: new Budget { Amount = 1m, Period = BudgetPeriods.Daily, Timezone = "Mars/Olympus_Mons" });
        var result = await _t.Enforcer.AdmitAsync(Request(Key(), user, 1_000_000));
        Assert.True(result.Allowed);
        Assert.Equal(_t.Keys.BudgetSpent("u1", new DateTimeOffset(2026, 3, 29, 0, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)), result.Reservation!.BudgetKey);
        Assert.Equal(RejectionReason.BudgetExhausted, (await _t.Enforcer.AdmitAsync(Request(Key(), user, 1))).Reason);
    }

    [Fact]
    public async Task A_weekly_budget_in_New_York_resets_on_Monday_local_midnight()
    {
        var user = User(budget: new Budget { Amount = 1m, Period = BudgetPeriods.Weekly, Timezone = "America/New_York" });
        // Sunday 2026-03-08 23:30 EDT = Monday 03:30 UTC: still the old week in New York.
        _t.Clock.Now = new DateTimeOffset(2026, 3, 9, 3, 30, 0, TimeSpan.Zero);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(Key(), user, 1_000_000))).Allowed);
        var rejected = await _t.Enforcer.AdmitAsync(Request(Key(), user, 1));
        Assert.Equal(RejectionReason.BudgetExhausted, rejected.Reason);
        Assert.Equal(TimeSpan.FromMinutes(30), rejected.RetryAfter);

        _t.Clock.Now = new DateTimeOffset(2026, 3, 9, 4, 0, 0, TimeSpan.Zero);
        Assert.True((await _t.Enforcer.AdmitAsync(Request(Key(), user, 1_000_000))).Allowed);
    }
}
