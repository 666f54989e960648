using System.Diagnostics;
using Gateway.Core.Projection;
using Gateway.Core.Resources;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Live state of one upstream account in this process: requests in flight and a circuit breaker.
/// After N consecutive failures the account cools down; when the cooldown ends one probe request is
/// let through (half-open): success closes the circuit, failure starts a new cooldown. Also the
/// account's per-minute request and token windows, combined with the other replicas' counts.
/// </summary>
public sealed class UpstreamHealth(string name, TimeProvider? time = null)
{
    private int _inFlight;
    private int _consecutiveFailures;
    private long _cooldownUntil;   // Stopwatch timestamp; 0 = closed
    private int _probeInFlight;    // 1 while the half-open probe runs

    public string Name { get; } = name;
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>True while the account is cooling down (probe not yet allowed).</summary>
    public bool IsCoolingDown(long now) => now < Volatile.Read(ref _cooldownUntil);

    /// <summary>1 while cooling down or half-open, for the cooldown gauge.</summary>
    public int CooldownGauge => Volatile.Read(ref _cooldownUntil) != 0 ? 1 : 0;

    /// <summary>Whether a request may be sent now. In half-open state only one caller wins the probe.</summary>
    public bool CanSend(long now, out bool isProbe)
    {
        isProbe = false;
        var until = Volatile.Read(ref _cooldownUntil);
        if (until == 0) return true;
        if (now < until) return false;
        if (Interlocked.CompareExchange(ref _probeInFlight, 1, 0) != 0) return false;
        isProbe = true;
        return true;
    }

    public void Enter() => Interlocked.Increment(ref _inFlight);

    private long _othersInFlight;

    /// <summary>Requests the other proxy replicas had in flight to this account at the last sync (accounts with maxConcurrent).</summary>
    public long OthersInFlight => Interlocked.Read(ref _othersInFlight);

    internal void ApplyOthersInFlight(long count) => Interlocked.Exchange(ref _othersInFlight, Math.Max(0, count));

    /// <summary>True while this replica's requests in flight plus the others' (as of the last sync) are under <paramref name="maxConcurrent"/>.</summary>
    public bool UnderConcurrency(int? maxConcurrent) => maxConcurrent is not > 0 || InFlight + OthersInFlight < maxConcurrent;

    // Minute windows for the account's requestsPerMinute / tokensPerMinute. The window is the UTC minute
    // (unix time / 60 s) rather than a boot-relative tick count, so every replica's window and the shared
    // one in Redis (AccountUsageSync) start at the same instant. The decision stays local and lock-free:
    // this replica's own counts are exact, and the other replicas' counts arrive with each sync, so across
    // replicas an account can be over its limit by about one sync interval of the other replicas' traffic.
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly Lock _rollLock = new();
    private long _minute;
    private long _minuteRequests;   // this replica's requests in _minute
    private long _minuteTokens;     // this replica's tokens in _minute
    private SharedUsage? _shared;   // replaced as a whole by each sync, so readers never see half of one

    /// <summary>The shared totals of one minute as of the last sync, and how much of this replica's own
    /// counts they already include (so those are not counted twice).</summary>
    private sealed record SharedUsage(long Minute, long Requests, long Tokens, long PushedRequests, long PushedTokens);

    /// <summary>The current UTC minute (unix minutes); resets the local counts when it changed.</summary>
    private long Roll()
    {
        var minute = _time.GetUtcNow().ToUnixTimeMilliseconds() / 60_000;
        var current = Volatile.Read(ref _minute);
        // A wall clock stepped back (NTP) keeps the window it had instead of resetting it twice.
        if (minute <= current) return current;
        lock (_rollLock)
        {
            if (minute > _minute)
            {
                _minuteRequests = 0;
                _minuteTokens = 0;
                Volatile.Write(ref _minute, minute);
            }
            return _minute;
        }
    }

    /// <summary>Counts a request sent in the current minute and in the rolling windows.</summary>
    public void CountRequest()
    {
        Roll();
        Interlocked.Increment(ref _minuteRequests);
        Interlocked.Increment(ref _windowRequests);
    }

    /// <summary>Counts tokens used in the current minute and in the rolling windows.</summary>
    public void CountTokens(long tokens)
    {
        if (tokens <= 0) return;
        Roll();
        Interlocked.Add(ref _minuteTokens, tokens);
        Interlocked.Add(ref _windowTokens, tokens);
    }

    // Rolling windows (UpstreamWindows: 1m, 5h, 1d, 7d), shared with the other replicas by AccountUsageSync: this
    // replica's counts not yet pushed, and every replica's totals as of the last sync.
    private long _windowRequests;
    private long _windowTokens;
    private WindowTotals? _windows;
    private volatile bool _refreshing;

    /// <summary>Every replica's totals of the rolling windows as of the last sync; null before the first.</summary>
    public WindowTotals? Windows => Volatile.Read(ref _windows);

    /// <summary>True while the operator refreshes the account's OAuth token (its refresh lease is held), as of the last sync.</summary>
    public bool Refreshing => _refreshing;

    /// <summary>This replica's window counts since the last push; taking them clears them.</summary>
    internal (long Requests, long Tokens) TakeWindowDelta() =>
        (Interlocked.Exchange(ref _windowRequests, 0), Interlocked.Exchange(ref _windowTokens, 0));

    /// <summary>Puts back counts a failed sync could not push.</summary>
    internal void ReturnWindowDelta(long requests, long tokens)
    {
        Interlocked.Add(ref _windowRequests, requests);
        Interlocked.Add(ref _windowTokens, tokens);
    }

    internal void ApplyWindows(WindowTotals totals) => Volatile.Write(ref _windows, totals);

    internal void SetRefreshing(bool refreshing) => _refreshing = refreshing;

    /// <summary>
    /// The share of the account's window limits still free, 0 (a limit reached) to 1, from every replica's totals of
    /// the last sync plus this replica's counts since. 1 without limits. Allocates nothing: it runs per candidate per request.
    /// </summary>
    public double Headroom(List<UpstreamWindow>? limits)
    {
        if (limits is null || limits.Count == 0) return 1;
        var totals = Volatile.Read(ref _windows);
        var localRequests = Interlocked.Read(ref _windowRequests);
        var localTokens = Interlocked.Read(ref _windowTokens);
        var headroom = 1.0;
        foreach (var limit in limits)
        {
            var i = UpstreamWindows.IndexOf(limit.Period);
            if (i < 0) continue;
            if (limit.Requests is long r and > 0)
                headroom = Math.Min(headroom, UpstreamWindows.Free((totals?.Requests[i] ?? 0) + localRequests, r));
            if (limit.Tokens is long t and > 0)
                headroom = Math.Min(headroom, UpstreamWindows.Free((totals?.Tokens[i] ?? 0) + localTokens, t));
        }
        return headroom;
    }

    /// <summary>True while this minute's requests and tokens, across replicas as far as known, are under the account's limits.</summary>
    /// <remarks>Known usage = the shared totals of the last sync (which include what this replica pushed) plus
    /// this replica's counts since that push. Without a sync for this minute (none yet, Redis down, or the
    /// minute just rolled over) it is this replica's counts alone.</remarks>
    public bool UnderLimits(int? requestsPerMinute, long? tokensPerMinute)
    {
        if (requestsPerMinute is null && tokensPerMinute is null) return true;
        // Shared first, then local: whichever sync's totals were read, the local counts read afterwards
        // include everything that sync pushed, so nothing is counted twice or missed.
        var shared = Volatile.Read(ref _shared);
        var minute = Roll();
        var requests = Interlocked.Read(ref _minuteRequests);
        var tokens = Interlocked.Read(ref _minuteTokens);
        if (shared is not null && shared.Minute == minute)
        {
            requests = shared.Requests + Math.Max(0, requests - shared.PushedRequests);
            tokens = shared.Tokens + Math.Max(0, tokens - shared.PushedTokens);
        }
        if (requestsPerMinute is > 0 && requests >= requestsPerMinute) return false;
        if (tokensPerMinute is > 0 && tokens >= tokensPerMinute) return false;
        return true;
    }

    /// <summary>This replica's counts for the current minute and the part of them not yet in the shared totals.</summary>
    internal PendingUsage TakePending()
    {
        var shared = Volatile.Read(ref _shared);
        Roll();
        long minute, requests, tokens;
        // Under the roll lock the counts belong to the minute read with them.
        lock (_rollLock)
        {
            minute = _minute;
            requests = Interlocked.Read(ref _minuteRequests);
            tokens = Interlocked.Read(ref _minuteTokens);
        }
        long pushedRequests = 0, pushedTokens = 0;
        if (shared is not null && shared.Minute == minute)
        {
            pushedRequests = shared.PushedRequests;
            pushedTokens = shared.PushedTokens;
        }
        return new PendingUsage(minute, requests, tokens, Math.Max(0, requests - pushedRequests), Math.Max(0, tokens - pushedTokens));
    }

    /// <summary>Records the shared totals returned after <paramref name="pushed"/>'s deltas were added to them.
    /// Only one sync runs at a time, so the pushed counts only grow within a minute.</summary>
    internal void ApplyShared(in PendingUsage pushed, long sharedRequests, long sharedTokens) =>
        Volatile.Write(ref _shared, new SharedUsage(pushed.Minute, sharedRequests, sharedTokens, pushed.Requests, pushed.Tokens));

    public void Exit() => Interlocked.Decrement(ref _inFlight);

    public void RecordSuccess(bool wasProbe)
    {
        Volatile.Write(ref _consecutiveFailures, 0);
        if (wasProbe || Volatile.Read(ref _cooldownUntil) != 0)
        {
            Volatile.Write(ref _cooldownUntil, 0);
            Volatile.Write(ref _probeInFlight, 0);
        }
    }

    /// <summary>Counts a failure; returns true when it opened (or re-opened) the circuit. An opened circuit is shared
    /// with the other replicas by the next sync (<see cref="AccountUsageSync"/>).</summary>
    public bool RecordFailure(bool wasProbe, int threshold, double cooldownSeconds)
    {
        var failures = Interlocked.Increment(ref _consecutiveFailures);
        if (!wasProbe && failures < threshold) return false;
        Volatile.Write(ref _cooldownUntil, Stopwatch.GetTimestamp() + (long)(cooldownSeconds * Stopwatch.Frequency));
        Volatile.Write(ref _probeInFlight, 0);
        Share(_time.GetUtcNow().ToUnixTimeMilliseconds() + (long)(cooldownSeconds * 1000));
        return true;
    }

    // Cooldowns shared across replicas, as unix milliseconds (wall clock, the same on every replica).
    private long _sharedCooldownPending;   // to push with the next sync; 0 = nothing new

    /// <summary>Cools the account down for <paramref name="delay"/> (an upstream 429's Retry-After or rate-limit reset),
    /// here at once and on the other replicas from the next sync. Never shortens a longer cooldown. Afterwards one
    /// probe request is let through, as after a circuit-breaker cooldown.</summary>
    /// <returns>True when this moved the account's cooldown later (false: a longer one was already running).</returns>
    public bool CoolDownFor(TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero) return false;
        Share(_time.GetUtcNow().ToUnixTimeMilliseconds() + (long)delay.TotalMilliseconds);
        return ExtendLocal(delay);
    }

    /// <summary>Applies a cooldown another replica shared (unix ms); a past or shorter one changes nothing.</summary>
    internal void ApplySharedCooldown(long untilUnixMs)
    {
        var remaining = untilUnixMs - _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (remaining > 0) ExtendLocal(TimeSpan.FromMilliseconds(remaining));
    }

    /// <summary>The cooldown (unix ms) this replica has not pushed yet, or 0; taking it clears it.</summary>
    internal long TakeSharedCooldown() => Interlocked.Exchange(ref _sharedCooldownPending, 0);

    /// <summary>Puts back a cooldown a failed sync could not push (unless a later one arrived meanwhile).</summary>
    internal void ReturnSharedCooldown(long untilUnixMs) => Share(untilUnixMs);

    private void Share(long untilUnixMs)
    {
        var current = Volatile.Read(ref _sharedCooldownPending);
        while (untilUnixMs > current)
        {
            var seen = Interlocked.CompareExchange(ref _sharedCooldownPending, untilUnixMs, current);
            if (seen == current) return;
            current = seen;
        }
    }

    private bool ExtendLocal(TimeSpan delay)
    {
        var until = Stopwatch.GetTimestamp() + (long)(delay.TotalSeconds * Stopwatch.Frequency);
        var current = Volatile.Read(ref _cooldownUntil);
        while (until > current)
        {
            var seen = Interlocked.CompareExchange(ref _cooldownUntil, until, current);
            if (seen == current)
            {
                // A probe in flight when the cooldown was extended no longer holds the half-open slot.
                Volatile.Write(ref _probeInFlight, 0);
                return true;
            }
            current = seen;
        }
        return false;
    }
}

/// <summary>One account's counts for <paramref name="Minute"/> (unix minutes) in this replica, and the deltas
/// not yet added to the shared totals.</summary>
internal readonly record struct PendingUsage(long Minute, long Requests, long Tokens, long RequestsDelta, long TokensDelta);
