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
