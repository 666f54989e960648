namespace Gateway.Operator.Kubernetes;

/// <summary>
/// Settings of the Kubernetes source: TokenGate:Kubeconfig and TokenGate:Namespace (from --kubeconfig and
/// --namespace), the rest from section TokenGate:Kubernetes.
/// </summary>
public sealed class KubernetesSourceOptions
{
    /// <summary>Kubeconfig file; empty: KUBECONFIG, then the in-cluster service account, then ~/.kube/config.</summary>
    public string? Kubeconfig { get; set; }

    /// <summary>Watch only this namespace; empty watches all namespaces.</summary>
    public string? Namespace { get; set; }

    public bool LeaderElection { get; set; } = true;
    public string LeaseName { get; set; } = "tokengate-operator";

    /// <summary>Namespace of the Lease; defaults to --namespace, else the in-cluster/kubeconfig namespace ("default").</summary>
    public string? LeaseNamespace { get; set; }

    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(15);
    public TimeSpan RenewDeadline { get; set; } = TimeSpan.FromSeconds(10);
    public TimeSpan RetryPeriod { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Hand the lease back on shutdown so the standby takes over at once.</summary>
    public bool ReleaseOnCancel { get; set; } = true;

    /// <summary>How often the leader checks that the Redis projection still exists.</summary>
    public TimeSpan ProjectionCheckInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Concurrent reconciles per kind (UpstreamAccount always uses one: it writes a single list). A reconcile mostly
    /// waits on the API server, PostgreSQL and Redis, so several per core keep a cold start with thousands of keys
    /// short (make bench-operator).
    /// </summary>
    public int Workers { get; set; } = 8;

    public static KubernetesSourceOptions From(IConfiguration configuration)
    {
        var o = configuration.GetSection("TokenGate:Kubernetes").Get<KubernetesSourceOptions>() ?? new KubernetesSourceOptions();
        o.Kubeconfig = NullIfEmpty(configuration["TokenGate:Kubeconfig"]) ?? NullIfEmpty(o.Kubeconfig);
        o.Namespace = NullIfEmpty(configuration["TokenGate:Namespace"]) ?? NullIfEmpty(o.Namespace);
        if (o.LeaseDuration <= o.RenewDeadline || o.RenewDeadline <= o.RetryPeriod)
        {
            throw new InvalidOperationException("TokenGate:Kubernetes: LeaseDuration must exceed RenewDeadline, which must exceed RetryPeriod.");
        }
        return o;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
