namespace Gateway.Operator.OAuth;

/// <summary>OAuth refresh settings (section TokenGate:OAuth).</summary>
public sealed class OAuthRefreshOptions
{
    /// <summary>When false the operator never refreshes (tokens are managed elsewhere).</summary>
    public bool Enabled { get; set; } = true;
    /// <summary>How often the leader looks at every OAuth account's expiry and refresh annotation.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(5);
    /// <summary>How long before expiry a token is refreshed when the account sets no oauth.refreshBefore.</summary>
    public TimeSpan DefaultRefreshBefore { get; set; } = TimeSpan.FromMinutes(5);
    /// <summary>Time-to-live of the per-account refresh lease in Redis; must outlast one refresh (request and Secret write).</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>Timeout of one token endpoint request.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(15);
    /// <summary>First wait after a failed refresh; doubled per consecutive failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan MinBackoff { get; set; } = TimeSpan.FromSeconds(2);
    public TimeSpan MaxBackoff { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>One message per wrong setting, empty when valid.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (CheckInterval < TimeSpan.FromMilliseconds(100)) errors.Add($"TokenGate:OAuth:CheckInterval must be at least 00:00:00.1 (was {CheckInterval}).");
        if (DefaultRefreshBefore <= TimeSpan.Zero) errors.Add($"TokenGate:OAuth:DefaultRefreshBefore must be positive (was {DefaultRefreshBefore}).");
        if (RequestTimeout <= TimeSpan.Zero) errors.Add($"TokenGate:OAuth:RequestTimeout must be positive (was {RequestTimeout}).");
        if (LeaseDuration < RequestTimeout + TimeSpan.FromSeconds(5))
            errors.Add($"TokenGate:OAuth:LeaseDuration ({LeaseDuration}) must exceed RequestTimeout ({RequestTimeout}) by at least 5 s, so a lease outlasts the refresh it guards.");
        if (MinBackoff <= TimeSpan.Zero) errors.Add($"TokenGate:OAuth:MinBackoff must be positive (was {MinBackoff}).");
        if (MaxBackoff < MinBackoff) errors.Add($"TokenGate:OAuth:MaxBackoff ({MaxBackoff}) must be at least MinBackoff ({MinBackoff}).");
        return errors;
    }
}
