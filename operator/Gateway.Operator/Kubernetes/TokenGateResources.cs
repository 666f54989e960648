using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;

namespace Gateway.Operator.Kubernetes;

/// <summary>Where the three TokenGate kinds live in the Kubernetes API.</summary>
public static class TokenGateResources
{
    public static ResourceDefinition ApiKeys { get; } = new(TokenGateApi.Group, TokenGateApi.Version, "apikeys", "ApiKey");
    public static ResourceDefinition UserQuotas { get; } = new(TokenGateApi.Group, TokenGateApi.Version, "userquotas", "UserQuota");
    public static ResourceDefinition UpstreamAccounts { get; } = new(TokenGateApi.Group, TokenGateApi.Version, "upstreamaccounts", "UpstreamAccount");

    public static ResourceDefinition ForKind(string kind) => kind switch
    {
        "ApiKey" => ApiKeys,
        "UserQuota" => UserQuotas,
        "UpstreamAccount" => UpstreamAccounts,
        _ => throw new ArgumentException($"'{kind}' is not a TokenGate kind.", nameof(kind)),
    };
}
