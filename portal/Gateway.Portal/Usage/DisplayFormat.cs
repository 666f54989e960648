using System.Globalization;

namespace Gateway.Portal.Usage;

/// <summary>
/// How the portal writes money, tokens and times. Money is USD with a dot and thousands separators in every
/// language (the amounts are the ledger's, not localised currency); times are UTC and say so.
/// </summary>
public static class DisplayFormat
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Whole cents, rounded half away from zero: "$1,234.57", "−$0.25".</summary>
    public static string Usd(decimal amount)
    {
        var cents = Math.Round(amount, 2, MidpointRounding.AwayFromZero);
        var text = "$" + Math.Abs(cents).ToString("#,0.00", Inv);
        return cents < 0 ? "\u2212" + text : text;
    }

    /// <summary>Up to 8 decimals without trailing zeros (at least 2): per-request costs like "$0.000134".</summary>
    public static string UsdPrecise(decimal amount)
    {
        var text = "$" + Math.Abs(amount).ToString("#,0.00######", Inv);
        return amount < 0 ? "\u2212" + text : text;
    }

    /// <summary>"1,234,567".</summary>
    public static string Count(long value) => value.ToString("#,0", Inv);

    /// <summary>"12.3M", "45.6k", "789": short token counts for chart values.</summary>
    public static string Compact(long value) => value switch
    {
        >= 1_000_000_000 => (value / 1e9).ToString("0.#", Inv) + "B",
        >= 1_000_000 => (value / 1e6).ToString("0.#", Inv) + "M",
        >= 10_000 => (value / 1e3).ToString("0.#", Inv) + "k",
        _ => value.ToString("#,0", Inv),
    };

    /// <summary>"2026-12-07 01:02:03 UTC".</summary>
    public static string Utc(DateTimeOffset at) => at.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", Inv) + " UTC";

    /// <summary>"2026-12-07".</summary>
    public static string Day(DateOnly day) => day.ToString("yyyy-MM-dd", Inv);

    /// <summary>A time in an IANA zone: "2027-01-01 00:00 (Europe/Berlin)"; UTC when the zone is unknown.</summary>
    public static string InZone(DateTimeOffset at, string? timezone)
    {
        try
        {
            var zone = Gateway.Core.Enforcement.BudgetCalendar.FindZone(timezone);
            return TimeZoneInfo.ConvertTime(at, zone).ToString("yyyy-MM-dd HH:mm", Inv) + " (" + (string.IsNullOrEmpty(timezone) ? "UTC" : timezone) + ")";
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return Utc(at);
        }
    }
}
