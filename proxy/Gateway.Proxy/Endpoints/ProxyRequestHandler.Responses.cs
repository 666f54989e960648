using System.Diagnostics;
using System.Globalization;
using Gateway.Core.Enforcement;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Requests;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Endpoints;

/// <summary>Proxy-generated answers: rejections in the provider's shape, rate-limit and overhead headers.</summary>
public sealed partial class ProxyRequestHandler
{
    /// <summary>Writes a proxy-generated error with the overhead header and counts the rejection.</summary>
    public Task RejectAsync(HttpContext context, ApiDialect dialect, ProxyError error, long start, string? message = null)
    {
        _metrics.Rejections.Add(1, new KeyValuePair<string, object?>("reason", error.Reason));
        SetOverheadHeader(context.Response, Stopwatch.GetTimestamp() - start);
        return error.WriteAsync(context, dialect, message ?? error.Message);
    }

    private Task RejectAdmissionAsync(HttpContext context, ApiDialect dialect, AdmissionResult admission, long start)
    {
        var (error, message) = Rejections.For(admission.Reason);
        if (admission.RetryAfter is { } retry) context.Response.Headers.RetryAfter = ProxyError.RetryAfterSeconds(retry.TotalSeconds);
        return RejectAsync(context, dialect, error, start, message);
    }

    // A limit is the same on almost every response (one configuration for most callers): its text is reused.
    private static readonly CachedNumberText s_requestLimitText = new();
    private static readonly CachedNumberText s_tokenLimitText = new();

    /// <summary>The decimal text of the last number formatted, reused while the number repeats.</summary>
    private sealed class CachedNumberText
    {
        private sealed record Entry(long Value, string Text);
        private Entry? _last;

        public string Format(long value)
        {
            var last = Volatile.Read(ref _last);
            if (last is not null && last.Value == value) return last.Text;
            var text = value.ToString(CultureInfo.InvariantCulture);
            Volatile.Write(ref _last, new Entry(value, text));
            return text;
        }
    }

    /// <summary>x-ratelimit-* of an admission: exact (<see cref="AdmissionResult"/>) or under a quota lease (<see cref="LeaseTicket"/>).</summary>
    private static void AddRateLimitHeaders(IHeaderDictionary headers, RateLimitStatus? requests, RateLimitStatus? tokens)
    {
        if (requests is { } r)
        {
            headers["x-ratelimit-limit-requests"] = s_requestLimitText.Format(r.Limit);
            headers["x-ratelimit-remaining-requests"] = r.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = FormatReset(r.Reset);
        }
        if (tokens is { } t)
        {
            headers["x-ratelimit-limit-tokens"] = s_tokenLimitText.Format(t.Limit);
            headers["x-ratelimit-remaining-tokens"] = t.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = FormatReset(t.Reset);
        }
    }

    /// <summary>OpenAI's reset format: "20ms", "1.5s", "6m0s".</summary>
    internal static string FormatReset(TimeSpan reset)
    {
        if (reset < TimeSpan.Zero) reset = TimeSpan.Zero;
        // One string each (no intermediate number string): these are on every admitted response.
        if (reset.TotalSeconds < 1) return string.Create(CultureInfo.InvariantCulture, $"{(long)Math.Ceiling(reset.TotalMilliseconds)}ms");
        if (reset.TotalMinutes < 1) return string.Create(CultureInfo.InvariantCulture, $"{Math.Round(reset.TotalSeconds, 3)}s");
        var minutes = (long)reset.TotalMinutes;
        return string.Concat(minutes.ToString(CultureInfo.InvariantCulture), "m", ((long)Math.Ceiling(reset.TotalSeconds - minutes * 60)).ToString(CultureInfo.InvariantCulture), "s");
    }

    /// <summary>Sets x-tokengate-overhead-ms (milliseconds, 3 decimals).</summary>
    public static void SetOverheadHeader(HttpResponse response, long ticks)
    {
        if (response.HasStarted) return;
        response.Headers["x-tokengate-overhead-ms"] = FormatMilliseconds(ticks);
    }

    /// <summary>Stopwatch ticks as milliseconds with at most 3 decimals, trailing zeros dropped ("0.###"), without a custom format string.</summary>
    internal static string FormatMilliseconds(long ticks)
    {
        var micros = (long)Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, MidpointRounding.AwayFromZero);
        if (micros < 0) micros = 0;
        var whole = micros / 1000;
        var fraction = (int)(micros % 1000);
        if (fraction == 0) return whole.ToString(CultureInfo.InvariantCulture);
        var digits = 3;
        while (fraction % 10 == 0) { fraction /= 10; digits--; }
        Span<char> text = stackalloc char[24];
        whole.TryFormat(text, out var n, provider: CultureInfo.InvariantCulture);
        text[n++] = '.';
        fraction.TryFormat(text[n..], out var m, digits == 3 ? "D3" : digits == 2 ? "D2" : "D1", CultureInfo.InvariantCulture);
        return new string(text[..(n + m)]);
    }
}
