using System.Globalization;
using System.Net.Http.Headers;

namespace Gateway.Proxy.Routing;

/// <summary>
/// How long an upstream that answered 429 asks to be left alone, from its response headers, in this order:
/// <c>retry-after-ms</c> (OpenAI), <c>Retry-After</c> (seconds or an HTTP date; RFC 9110), then the providers'
/// rate-limit reset headers of a window that is exhausted (remaining 0): OpenAI's <c>x-ratelimit-reset-{requests,tokens}</c>
/// (durations such as <c>6m0s</c>, <c>1.5s</c>, <c>20ms</c>) and Anthropic's
/// <c>anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset</c> (RFC 3339 instants). Null when none
/// applies; the caller caps the result.
/// </summary>
public static class RateLimitReset
{
    private static readonly string[] OpenAIWindows = ["requests", "tokens"];
    private static readonly string[] AnthropicWindows = ["requests", "tokens", "input-tokens", "output-tokens"];

    public static TimeSpan? Delay(HttpResponseHeaders headers, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (First(headers, "retry-after-ms") is { } ms
            && double.TryParse(ms, NumberStyles.Float, CultureInfo.InvariantCulture, out var millis) && millis > 0 && double.IsFinite(millis))
            return TimeSpan.FromMilliseconds(Math.Min(millis, TimeSpan.MaxValue.TotalMilliseconds / 2));
        if (headers.RetryAfter is { } retry)
        {
            if (retry.Delta is { } delta && delta > TimeSpan.Zero) return delta;
            if (retry.Date is { } date && date > now) return date - now;
        }
        TimeSpan? longest = null;
        foreach (var window in OpenAIWindows)
        {
            if (!Exhausted(headers, "x-ratelimit-remaining-" + window)) continue;
            if (First(headers, "x-ratelimit-reset-" + window) is { } text && ParseGoDuration(text) is { } d) longest = Max(longest, d);
        }
        foreach (var window in AnthropicWindows)
        {
            if (!Exhausted(headers, "anthropic-ratelimit-" + window + "-remaining")) continue;
            if (First(headers, "anthropic-ratelimit-" + window + "-reset") is { } text
                && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) && at > now)
                longest = Max(longest, at - now);
        }
        return longest;
    }

    /// <summary>Parses a duration as OpenAI writes it (Go's time.Duration format: <c>1h2m3.5s</c>, <c>20ms</c>); null when malformed or not positive.</summary>
    public static TimeSpan? ParseGoDuration(string text)
    {
        var s = text.AsSpan().Trim();
        if (s.IsEmpty || s.Length > 64) return null;
        double totalMs = 0;
        var i = 0;
        while (i < s.Length)
        {
            var start = i;
            while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
            if (i == start || !double.TryParse(s[start..i], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var value)) return null;
            var unitStart = i;
            while (i < s.Length && char.IsAsciiLetter(s[i])) i++;
            double factor = s[unitStart..i] switch
            {
                "h" => 3_600_000,
                "m" => 60_000,
                "s" => 1_000,
                "ms" => 1,
                "us" => 0.001,
                "ns" => 0.000_001,
                _ => double.NaN,
            };
            if (double.IsNaN(factor)) return null;
            totalMs += value * factor;
        }
        return totalMs > 0 && totalMs < 1e12 ? TimeSpan.FromMilliseconds(totalMs) : null;
    }

    private static bool Exhausted(HttpResponseHeaders headers, string name) =>
        First(headers, name) is { } v && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n <= 0;

    private static string? First(HttpResponseHeaders headers, string name) =>
        headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static TimeSpan Max(TimeSpan? a, TimeSpan b) => a is { } x && x > b ? x : b;
}
