using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Core.Redis;
using Gateway.Kubernetes.Runtime;

namespace Gateway.Operator.Telemetry;

/// <summary>
/// Gauges of what the operator knows about the resources and its dependencies, on the "TokenGate.Operator"
/// meter. Labels are resource names ("namespace/name" of UpstreamAccounts and UserQuotas, which platform teams
/// declare, so their number is bounded like kube-state-metrics' series) and never key material. Resource gauges
/// are reported by the leader only (the replica that reconciles), so a standby's stale view never shows.
/// </summary>
public sealed class OperatorStateMetrics : IDisposable
{
    private readonly Meter _meter = new(OperatorMetrics.MeterName);
    private readonly ConcurrentDictionary<string, int> _upstreamReady = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _credentialsExpiry = new(StringComparer.Ordinal);
    // Upstream → (window → used ratio) of the windows with a limit in spec.windows.
    private readonly ConcurrentDictionary<string, IReadOnlyList<(string Window, double Ratio)>> _windowUsage = new(StringComparer.Ordinal);
    private volatile IReadOnlyDictionary<string, double> _budgetUsed = new Dictionary<string, double>(StringComparer.Ordinal);

    public OperatorStateMetrics(IRedisClient redis)
    {
        _meter.CreateObservableGauge("tokengate_operator_redis_up", () => redis.IsConnected ? 1 : 0,
            description: "1 while the operator's Redis connection is up.");
        _meter.CreateObservableGauge("tokengate_operator_upstream_ready", () => Observe(_upstreamReady),
            description: "1 when an UpstreamAccount is Ready, 0 when it is not for a problem (credentials, spec); disabled accounts are not listed.");
        _meter.CreateObservableGauge("tokengate_operator_upstream_credentials_expiry_timestamp_seconds", () => Observe(_credentialsExpiry),
            description: "Unix time at which an UpstreamAccount's OAuth access token expires (from its auth JSON).");
        _meter.CreateObservableGauge("tokengate_upstream_token_expiry_seconds", ObserveSecondsLeft,
            description: "Seconds until an UpstreamAccount's OAuth access token expires (negative once expired); the operator refreshes it oauth.refreshBefore ahead.");
        _meter.CreateObservableGauge("tokengate_upstream_window_usage_ratio", ObserveWindows,
            description: "Share of an UpstreamAccount's window limit (spec.windows: 5h, 1d, 7d) used across every proxy replica, the larger of the request and token shares; 1 means the account gets no traffic until the window frees up.");
        _meter.CreateObservableGauge("tokengate_operator_user_budget_used_ratio", ObserveBudget,
            description: "Spend in the current budget period over the budget amount, per UserQuota with a budget (refreshed every TokenGate:BudgetMetricsInterval).");
    }

    /// <summary>Records an UpstreamAccount's readiness (null: disabled or deleted, not listed) and its token expiry.</summary>
    public void SetUpstream(string upstream, bool? ready, DateTimeOffset? credentialsExpireAt)
    {
        if (ready is null) _upstreamReady.TryRemove(upstream, out _);
        else _upstreamReady[upstream] = ready.Value ? 1 : 0;
        if (credentialsExpireAt is { } e) _credentialsExpiry[upstream] = e.ToUnixTimeMilliseconds() / 1000.0;
        else _credentialsExpiry.TryRemove(upstream, out _);
    }

    public void RemoveUpstream(string upstream)
    {
        SetUpstream(upstream, null, null);
        _windowUsage.TryRemove(upstream, out _);
    }

    /// <summary>Replaces an UpstreamAccount's window usage ratios (empty: it has no window limits).</summary>
    public void SetWindowUsage(string upstream, IReadOnlyList<(string Window, double Ratio)> usage)
    {
        if (usage.Count == 0) _windowUsage.TryRemove(upstream, out _);
        else _windowUsage[upstream] = usage;
    }

    /// <summary>Replaces the per-user budget ratios (UserBudgetMonitor); empty clears them.</summary>
    public void SetBudgetUsage(IReadOnlyDictionary<string, double> usedRatioByUser) => _budgetUsed = usedRatioByUser;

    private static IEnumerable<Measurement<double>> Observe<T>(ConcurrentDictionary<string, T> values) where T : struct, IConvertible
    {
        if (!OperatorMetrics.IsLeader) yield break;
        foreach (var (name, value) in values)
            yield return new Measurement<double>(value.ToDouble(System.Globalization.CultureInfo.InvariantCulture), new KeyValuePair<string, object?>("upstream", name));
    }

    private IEnumerable<Measurement<double>> ObserveSecondsLeft()
    {
        if (!OperatorMetrics.IsLeader) yield break;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        foreach (var (name, expiry) in _credentialsExpiry)
            yield return new Measurement<double>(Math.Round(expiry - now, 3), new KeyValuePair<string, object?>("upstream", name));
    }

    private IEnumerable<Measurement<double>> ObserveWindows()
    {
        if (!OperatorMetrics.IsLeader) yield break;
        foreach (var (name, usage) in _windowUsage)
        {
            foreach (var (window, ratio) in usage)
                yield return new Measurement<double>(ratio, new KeyValuePair<string, object?>("upstream", name), new KeyValuePair<string, object?>("window", window));
        }
    }

    private IEnumerable<Measurement<double>> ObserveBudget()
    {
        if (!OperatorMetrics.IsLeader) yield break;
        foreach (var (user, ratio) in _budgetUsed) yield return new Measurement<double>(ratio, new KeyValuePair<string, object?>("user", user));
    }

    public void Dispose() => _meter.Dispose();
}
