namespace Gateway.Operator.Kubernetes;

internal static partial class Log
{
    [LoggerMessage(700, LogLevel.Information, "Kubernetes source: watching {Scope}; leader election {Election} on lease {LeaseNamespace}/{LeaseName} as {Identity}")]
    public static partial void Starting(ILogger logger, string scope, string election, string leaseNamespace, string leaseName, string identity);

    [LoggerMessage(701, LogLevel.Warning, "The Redis projection is missing (Redis restarted or was flushed); reconciling everything again")]
    public static partial void ProjectionMissing(ILogger logger);

    [LoggerMessage(702, LogLevel.Information, "{Kind} {Key} is in PostgreSQL but no longer in the cluster; cleaning it up")]
    public static partial void Orphan(ILogger logger, string kind, string key);

    [LoggerMessage(703, LogLevel.Error, "Projection maintenance failed; retrying")]
    public static partial void MaintenanceFailed(ILogger logger, Exception exception);
}
