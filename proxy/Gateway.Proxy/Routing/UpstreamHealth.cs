using System.Diagnostics;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Live state of one upstream account in this process: requests in flight and a circuit breaker.
/// After N consecutive failures the account cools down; when the cooldown ends one probe request is
/// let through (half-open): success closes the circuit, failure starts a new cooldown.
/// </summary>
public sealed class UpstreamHealth(string name)
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

    // Per-process minute windows for the account's requestsPerMinute / tokensPerMinute. They are local to
    // this replica (the account's limits are a routing preference, not a billing rule): each replica
    // keeps its own traffic under the limit, which is exact with one replica and conservative per replica.
    private readonly Lock _rollLock = new();
    private long _minute;
    private int _minuteRequests;
    private long _minuteTokens;

    private void Roll()
    {
        var minute = Environment.TickCount64 / 60_000;
        if (Volatile.Read(ref _minute) == minute) return;
        lock (_rollLock)
        {
            if (_minute == minute) return;
            _minuteRequests = 0;
            _minuteTokens = 0;
            Volatile.Write(ref _minute, minute);
        }
    }

    /// <summary>Counts a request sent in the current minute.</summary>
    public void CountRequest()
    {
        Roll();
        Interlocked.Increment(ref _minuteRequests);
    }

    /// <summary>Counts tokens used in the current minute.</summary>
    public void CountTokens(long tokens)
    {
        Roll();
        Interlocked.Add(ref _minuteTokens, tokens);
    }

    /// <summary>True while this minute's requests and tokens are under the account's limits.</summary>
    public bool UnderLimits(int? requestsPerMinute, long? tokensPerMinute)
    {
        if (requestsPerMinute is null && tokensPerMinute is null) return true;
        Roll();
        if (requestsPerMinute is > 0 && Volatile.Read(ref _minuteRequests) >= requestsPerMinute) return false;
        if (tokensPerMinute is > 0 && Interlocked.Read(ref _minuteTokens) >= tokensPerMinute) return false;
        return true;
    }
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

    /// <summary>Counts a failure; returns true when it opened (or re-opened) the circuit.</summary>
    public bool RecordFailure(bool wasProbe, int threshold, double cooldownSeconds)
    {
        var failures = Interlocked.Increment(ref _consecutiveFailures);
        if (!wasProbe && failures < threshold) return false;
        Volatile.Write(ref _cooldownUntil, Stopwatch.GetTimestamp() + (long)(cooldownSeconds * Stopwatch.Frequency));
        Volatile.Write(ref _probeInFlight, 0);
        return true;
    }
}
