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
    /// <summary>How often everything is reconciled again even without changes.</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromSeconds(60);
}
