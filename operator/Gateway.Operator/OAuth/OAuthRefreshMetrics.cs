using System.Diagnostics.Metrics;
using Gateway.Kubernetes.Runtime;

namespace Gateway.Operator.OAuth;

/// <summary>tokengate_oauth_refresh_total{result}: result is one of the constants below (bounded), never an account or token.</summary>
public static class OAuthRefreshMetrics
{
    /// <summary>The provider issued a new pair and the Secret holds it.</summary>
    public const string Success = "success";
    /// <summary>A pair issued before a crash or failed write was found pending and written to the Secret.</summary>
    public const string Recovered = "recovered";
    /// <summary>The provider refused the grant (invalid_grant, invalid_client…).</summary>
    public const string Rejected = "rejected";
    /// <summary>Transient: network, timeout, 5xx, 429, a garbled answer, or the Secret write kept failing.</summary>
    public const string Error = "error";

    private static readonly Meter Meter = new(OperatorMetrics.MeterName);

    private static readonly Counter<long> Refreshes = Meter.CreateCounter<long>("tokengate_oauth_refresh_total",
        description: "OAuth token refreshes by result: success, recovered, rejected or error.");

    public static void Count(string result) => Refreshes.Add(1, new KeyValuePair<string, object?>("result", result));
}
