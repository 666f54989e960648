using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Core.Projection;

namespace Gateway.Operator.Telemetry;

/// <summary>An upstream account's health as the operator judged it from recent traffic and the proxies' cooldowns.</summary>
/// <param name="Status">"True", "False" or "Unknown" (the Healthy condition's status).</param>
/// <param name="Windows">Its requests and tokens in the rolling windows, by every proxy replica; null when not read.</param>
public sealed record UpstreamHealthVerdict(string Status, string Reason, string Message, DateTimeOffset? CooldownUntil, WindowTotals? Windows = null)
{
    /// <summary>True when the verdict differs from <paramref name="other"/> in anything status shows.</summary>
    public bool DiffersFrom(UpstreamHealthVerdict? other) =>
        other is null || other.Status != Status || other.Reason != Reason || other.CooldownUntil != CooldownUntil
        || !SameWindows(other.Windows, Windows);

    // The minute window is left out: it moves with every request and every second after, and status does not show it,
    // so comparing it would reconcile every busy account at every measurement for nothing.
    private static bool SameWindows(WindowTotals? a, WindowTotals? b) =>
        a is null ? b is null : b is not null && a.Requests.AsSpan(1).SequenceEqual(b.Requests.AsSpan(1)) && a.Tokens.AsSpan(1).SequenceEqual(b.Tokens.AsSpan(1));
}

/// <summary>
/// The latest <see cref="UpstreamHealthVerdict"/> per account ("namespace/name"), written by
/// <see cref="UpstreamHealthMonitor"/> and read by the reconciler for the Healthy condition and status.cooldownUntil.
/// <see cref="Changed"/> fires for an account whose verdict changed, so the host reconciles it (its status) soon.
/// Also exports tokengate_upstream_healthy{upstream} (1 healthy, 0 unhealthy; no series while unknown).
/// </summary>
public sealed class UpstreamHealthBoard : IDisposable
{
    private readonly ConcurrentDictionary<string, UpstreamHealthVerdict> _verdicts = new(StringComparer.Ordinal);
    private readonly Meter _meter = new("TokenGate.Operator.UpstreamHealth");

    public UpstreamHealthBoard()
    {
        _meter.CreateObservableGauge("tokengate_upstream_healthy", Observe,
            description: "1 when the upstream account's recent requests succeed and it is not cooling down, 0 when not (leader only; no series while there is no recent traffic).");
    }

    /// <summary>Raised with the account whose verdict changed.</summary>
    public event Action<string>? Changed;

    public UpstreamHealthVerdict? Get(string account) => _verdicts.GetValueOrDefault(account);

    /// <summary>Records the verdicts of one measurement; accounts not in it are forgotten.</summary>
    public void Publish(IReadOnlyDictionary<string, UpstreamHealthVerdict> verdicts)
    {
        foreach (var gone in _verdicts.Keys.Where(k => !verdicts.ContainsKey(k)).ToList())
        {
            _verdicts.TryRemove(gone, out _);
            Changed?.Invoke(gone);
        }
        foreach (var (account, verdict) in verdicts)
        {
            var before = _verdicts.GetValueOrDefault(account);
            _verdicts[account] = verdict;
            if (verdict.DiffersFrom(before)) Changed?.Invoke(account);
        }
    }

    /// <summary>Forgets every verdict (leadership lost: another replica measures now).</summary>
    public void Clear() => _verdicts.Clear();

    private IEnumerable<Measurement<int>> Observe()
    {
        foreach (var (account, v) in _verdicts)
        {
            if (v.Status == "Unknown") continue;
            yield return new Measurement<int>(v.Status == "True" ? 1 : 0, new KeyValuePair<string, object?>("upstream", account));
        }
    }

    public void Dispose() => _meter.Dispose();
}
