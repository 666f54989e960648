using Gateway.Core.Projection;

namespace Gateway.Operator.OAuth;

/// <summary>
/// Redis keys of the OAuth refresher, all under the projection prefix with the account in a hash tag, so
/// each script touches one slot (Redis Cluster). The account is "namespace/name" of the UpstreamAccount.
/// </summary>
public sealed class OAuthRedisKeys(ProjectionKeys keys)
{
    /// <summary>String: the fencing value of the replica refreshing the account (SET NX PX).</summary>
    public string Lease(string account) => keys.UpstreamRefreshLease(account);

    /// <summary>String (JSON): a token pair the provider issued that is not in the Secret yet.</summary>
    public string Pending(string account) => keys.Prefix + "oauth:{" + account + "}:pending";

    /// <summary>String (unix ms): when a proxy last saw the account's upstream answer 401 (written by the proxies).</summary>
    public string RefreshRequest(string account) => keys.UpstreamRefreshRequest(account);

    /// <summary>Hash: last refresh, last failure, backoff and the handled refresh annotation.</summary>
    public string State(string account) => keys.Prefix + "oauth:{" + account + "}:state";
}
