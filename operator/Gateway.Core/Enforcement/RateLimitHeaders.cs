namespace Gateway.Core.Enforcement;

/// <summary>
/// The x-ratelimit-* numbers of an admission, from the window counts the Admit script returns (or, for a request
/// admitted under a quota lease, what its Grant returned; <see cref="LeaseBook"/>): the most restrictive configured
/// window (least remaining). Computed here rather than in the script so Redis does no
/// header arithmetic per request; the arithmetic is in doubles, as the script's Lua numbers were, so the
/// numbers are the same to the last digit even for limits beyond 2^53.
/// </summary>
internal static class RateLimitHeaders
{
    private const double Minute = 60_000;

    /// <summary>
    /// The headers of <paramref name="request"/> from the windows' counts before it (<paramref name="counts"/>), with the
    /// limits it carries. <paramref name="allowed"/>: the request was admitted, so its own request and estimate count.
    /// </summary>
    public static (RateLimitStatus? Requests, RateLimitStatus? Tokens) For(AdmissionRequest request, in WindowCounts counts, long nowMs, bool allowed)
    {
        var kl = request.Key.Limits;
        var ul = request.User.Limits;
        return From(counts, nowMs, allowed, request.EstimatedTokens,
            kl?.RequestsPerMinute ?? -1, kl?.RequestsPerDay ?? -1, ul?.RequestsPerMinute ?? -1, ul?.RequestsPerDay ?? -1,
            kl?.TokensPerMinute ?? -1, kl?.TokensPerDay ?? -1, ul?.TokensPerMinute ?? -1, ul?.TokensPerDay ?? -1);
    }

    /// <summary>
    /// <paramref name="c"/> are the windows' counts (as the Admit script returns them from index 3). Limits are -1 when
    /// not set. <paramref name="allowed"/>: the request was admitted, so its own request and estimate count.
    /// </summary>
    private static (RateLimitStatus? Requests, RateLimitStatus? Tokens) From(
        in WindowCounts c, long nowMs, bool allowed, long estimatedTokens,
        long keyRpm, long keyRpd, long userRpm, long userRpd, long keyTpm, long keyTpd, long userTpm, long userTpd)
    {
        // Milliseconds left in the current minute and in the current UTC day.
        var rest = (double)(Minute - (nowMs - nowMs / 60_000 * 60_000));
        var dayLeft = (double)((nowMs / 86_400_000 + 1) * 86_400_000 - nowMs);
        double est = estimatedTokens;

        double rl = -1, rr = -1, rz = -1;
        Window(ref rl, ref rr, ref rz, keyRpm, c.KeyRequestsMinute, c.KeyRequestsPreviousMinute, 1, minute: true, allowed, rest, dayLeft);
        Window(ref rl, ref rr, ref rz, keyRpd, c.KeyRequestsDay, 0, 1, minute: false, allowed, rest, dayLeft);
        Window(ref rl, ref rr, ref rz, userRpm, c.UserRequestsMinute, c.UserRequestsPreviousMinute, 1, minute: true, allowed, rest, dayLeft);
        Window(ref rl, ref rr, ref rz, userRpd, c.UserRequestsDay, 0, 1, minute: false, allowed, rest, dayLeft);
        double tl = -1, tr = -1, tz = -1;
        Window(ref tl, ref tr, ref tz, keyTpm, c.KeyTokensMinute, c.KeyTokensPreviousMinute, est, minute: true, allowed, rest, dayLeft);
        Window(ref tl, ref tr, ref tz, keyTpd, c.KeyTokensDay, 0, est, minute: false, allowed, rest, dayLeft);
        Window(ref tl, ref tr, ref tz, userTpm, c.UserTokensMinute, c.UserTokensPreviousMinute, est, minute: true, allowed, rest, dayLeft);
        Window(ref tl, ref tr, ref tz, userTpd, c.UserTokensDay, 0, est, minute: false, allowed, rest, dayLeft);
        return (Status(rl, rr, rz), Status(tl, tr, tz));
    }

    // One window: a minute window counts the previous minute weighted by the part of it still inside the last
    // 60 s (rounded up) and is back to its full limit one minute after its current minute's last request (or
    // when the previous minute stops weighing); a day window at the end of the UTC day. The window with the
    // least remaining wins; on a tie the earlier one stays.
    private static void Window(ref double bestLimit, ref double bestRemaining, ref double bestReset, long limit,
        double count, double previous, double k, bool minute, bool allowed, double rest, double dayLeft)
    {
        if (limit < 0) return;
        double l = limit;
        if (allowed) count += k;
        double used = count, reset = 0;
        if (minute)
        {
            used = count + Math.Ceiling(previous * rest / Minute);
            if (count > 0) reset = rest + Minute;
            else if (previous > 0) reset = rest;
        }
        else if (count > 0)
        {
            reset = dayLeft;
        }
        var remaining = l - used;
        if (remaining < 0) remaining = 0;
        if (bestLimit < 0 || remaining < bestRemaining)
        {
            bestLimit = l;
            bestRemaining = remaining;
            bestReset = reset;
        }
    }

    // Redis turned the script's Lua numbers into integers by truncation; so does this.
    private static RateLimitStatus? Status(double limit, double remaining, double reset) =>
        limit < 0 ? null : new RateLimitStatus((long)limit, (long)remaining, TimeSpan.FromMilliseconds((long)reset));
}
