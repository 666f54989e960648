namespace Gateway.Operator.Reconcilers;

/// <summary>Operator settings (section TokenGate).</summary>
public sealed class OperatorOptions
{
    /// <summary>Base URL of the proxy as workloads reach it; written into issued key Secrets.</summary>
    public string PublicBaseUrl { get; set; } = "http://127.0.0.1:8080";
    /// <summary>Base URL of the portal; used in invite links.</summary>
    public string PortalBaseUrl { get; set; } = "http://127.0.0.1:8081";
    /// <summary>How long an invite link stays valid.</summary>
    public TimeSpan InviteTtl { get; set; } = TimeSpan.FromDays(7);
    /// <summary>
    /// How fresh usage figures in status are. The file source reconciles everything this often; in Kubernetes the
    /// leader asks PostgreSQL this often which keys and users had usage or ledger changes and reconciles only those
    /// (UpstreamAccounts, a small fixed pool whose status shows live window usage, are still reconciled this often).
    /// </summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>
    /// Kubernetes: how often every ApiKey and UserQuota is reconciled even without any change (drift repair, as
    /// controller-runtime's SyncPeriod; default 10 hours). Changes, usage and timers reach objects without it.
    /// </summary>
    public TimeSpan FullResyncInterval { get; set; } = TimeSpan.FromHours(10);
    /// <summary>How often the leader refreshes the per-user budget gauge (tokengate_operator_user_budget_used_ratio).</summary>
    public TimeSpan BudgetMetricsInterval { get; set; } = TimeSpan.FromSeconds(30);
    /// <summary>How often the leader judges upstream accounts' health (Healthy condition, cooldownUntil, tokengate_upstream_healthy).</summary>
    public TimeSpan UpstreamHealthInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>One message per wrong setting, empty when valid.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (!IsHttpUrl(PublicBaseUrl)) errors.Add($"TokenGate:PublicBaseUrl must be an absolute http(s) URL, the proxy as workloads reach it (was '{PublicBaseUrl}').");
        if (!IsHttpUrl(PortalBaseUrl)) errors.Add($"TokenGate:PortalBaseUrl must be an absolute http(s) URL, the portal as users reach it (was '{PortalBaseUrl}').");
        if (InviteTtl <= TimeSpan.Zero) errors.Add($"TokenGate:InviteTtl must be positive (was {InviteTtl}).");
        if (ResyncInterval < TimeSpan.FromSeconds(1)) errors.Add($"TokenGate:ResyncInterval must be at least 00:00:01 (was {ResyncInterval}).");
        if (FullResyncInterval < TimeSpan.FromSeconds(1)) errors.Add($"TokenGate:FullResyncInterval must be at least 00:00:01 (was {FullResyncInterval}).");
        if (UpstreamHealthInterval < TimeSpan.FromSeconds(1)) errors.Add($"TokenGate:UpstreamHealthInterval must be at least 00:00:01 (was {UpstreamHealthInterval}).");
        if (BudgetMetricsInterval < TimeSpan.FromSeconds(1)) errors.Add($"TokenGate:BudgetMetricsInterval must be at least 00:00:01 (was {BudgetMetricsInterval}).");
        return errors;
    }

    private static bool IsHttpUrl(string? value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var u) && (u.Scheme == Uri.UriSchemeHttp || u.Scheme == Uri.UriSchemeHttps);
}
