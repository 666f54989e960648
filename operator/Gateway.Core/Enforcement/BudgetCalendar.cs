using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Resources;

namespace Gateway.Core.Enforcement;

/// <summary>One calendar-aligned budget period, as UTC instants: [Start, End).</summary>
public readonly record struct BudgetPeriod(DateTimeOffset Start, DateTimeOffset End)
{
    /// <summary>Identifies the period in Redis key names: the start as unix seconds.</summary>
    public string Id => Start.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Budget period boundaries in the budget's IANA time zone: daily at local midnight, weekly on Monday
/// 00:00, monthly on the 1st 00:00. The proxy uses them for budget counter keys; the operator for
/// <c>status.periodResetsAt</c> (= <see cref="BudgetPeriod.End"/>).
/// </summary>
public static class BudgetCalendar
{
    private static readonly ConcurrentDictionary<string, TimeZoneInfo> Zones = new(StringComparer.Ordinal);

    /// <summary>The period containing <paramref name="now"/>, or null for period "none" (a budget that never resets).</summary>
    /// <exception cref="ArgumentException">Unknown period.</exception>
    /// <exception cref="TimeZoneNotFoundException">Unknown IANA time zone.</exception>
    public static BudgetPeriod? CurrentPeriod(string period, string? timezone, DateTimeOffset now)
    {
        if (string.Equals(period, BudgetPeriods.None, StringComparison.Ordinal)) return null;
        var zone = FindZone(timezone);
        var local = TimeZoneInfo.ConvertTime(now, zone).DateTime; // wall-clock time, Kind Unspecified
        DateTime startLocal, endLocal;
        switch (period)
        {
            case BudgetPeriods.Daily:
                startLocal = local.Date;
                endLocal = startLocal.AddDays(1);
                break;
            case BudgetPeriods.Weekly:
                startLocal = local.Date.AddDays(-(((int)local.DayOfWeek + 6) % 7)); // Monday-based week (ISO 8601)
                endLocal = startLocal.AddDays(7);
                break;
            case BudgetPeriods.Monthly:
                startLocal = new DateTime(local.Year, local.Month, 1, 0, 0, 0, DateTimeKind.Unspecified);
                endLocal = startLocal.AddMonths(1);
                break;
            default:
                throw new ArgumentException($"Unknown budget period '{period}'; expected none, daily, weekly or monthly.", nameof(period));
        }
        return new BudgetPeriod(ToInstant(startLocal, zone), ToInstant(endLocal, zone));
    }

    /// <summary>The period for a user's budget, or null when there is no budget or it never resets.</summary>
    public static BudgetPeriod? CurrentPeriod(Budget? budget, DateTimeOffset now) =>
        budget is null ? null : CurrentPeriod(budget.Period, budget.Timezone, now);

    /// <summary>Resolves an IANA zone id (null or empty = UTC), caching the lookup.</summary>
    public static TimeZoneInfo FindZone(string? timezone)
    {
        if (string.IsNullOrEmpty(timezone) || timezone is "UTC" or "Etc/UTC") return TimeZoneInfo.Utc;
        return Zones.GetOrAdd(timezone, static id => TimeZoneInfo.FindSystemTimeZoneById(id));
    }

    /// <summary>
    /// The instant a local wall-clock time begins. A midnight skipped by a DST jump (e.g. America/Havana,
    /// Asia/Beirut) begins at the first valid local time after it; a midnight that occurs twice (clocks
    /// set back to midnight) begins at its first occurrence, so a period never starts after the previous ends.
    /// </summary>
    internal static DateTimeOffset ToInstant(DateTime local, TimeZoneInfo zone)
    {
        if (zone.IsInvalidTime(local))
        {
            // Walk forward to the end of the gap; gaps are whole minutes and at most a few hours long.
            var probe = local;
            while (zone.IsInvalidTime(probe)) probe = probe.AddMinutes(1);
            // tzdb transitions are minute-aligned, so the first valid minute is the transition instant.
            return new DateTimeOffset(probe, zone.GetUtcOffset(probe)).ToUniversalTime();
        }
        if (zone.IsAmbiguousTime(local))
        {
            var offsets = zone.GetAmbiguousTimeOffsets(local);
            var largest = offsets[0];
            foreach (var o in offsets) if (o > largest) largest = o;
            return new DateTimeOffset(local, largest).ToUniversalTime();
        }
        return new DateTimeOffset(local, zone.GetUtcOffset(local)).ToUniversalTime();
    }
}
