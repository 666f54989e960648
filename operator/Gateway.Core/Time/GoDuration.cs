using System.Globalization;

namespace Gateway.Core.Time;

/// <summary>Parses Go/Kubernetes duration strings such as "24h", "1h30m", "90s", "500ms".</summary>
public static class GoDuration
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.AsSpan().Trim();
        if (s is "0") return true;
        double totalMs = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            if (i == start) return false;
            if (!double.TryParse(s[start..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
            var ustart = i;
            while (i < s.Length && !char.IsAsciiDigit(s[i]) && s[i] != '.') i++;
            double unitMs = s[ustart..i] switch
            {
                "ns" => 1e-6,
                "us" or "µs" => 1e-3,
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => double.NaN,
            };
            if (double.IsNaN(unitMs)) return false;
            totalMs += n * unitMs;
        }
        if (totalMs > TimeSpan.MaxValue.TotalMilliseconds) return false;
        value = TimeSpan.FromMilliseconds(totalMs);
        return true;
    }

    public static TimeSpan Parse(string? text, TimeSpan fallback) => TryParse(text, out var v) ? v : fallback;
}
