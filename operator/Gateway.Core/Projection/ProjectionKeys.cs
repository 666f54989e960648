namespace Gateway.Core.Projection;

/// <summary>
/// The Redis layout shared by the operator (writer of the projection) and the proxy (reader, and
/// writer of counters and usage events). The projection can always be rebuilt from PostgreSQL.
/// </summary>
public sealed class ProjectionKeys(string prefix = ProjectionKeys.DefaultPrefix)
{
    public const string DefaultPrefix = "tg:";

    /// <summary>The prefix of every key and channel; configurable so tests and tenants can share a server.</summary>
    public string Prefix { get; } = prefix;

    /// <summary>String, JSON <see cref="KeyProjection"/>, by key hash (hex HMAC).</summary>
    public string Key(string keyHash) => Prefix + "key:" + keyHash;

    /// <summary>String, JSON <see cref="UserProjection"/>, by user id.</summary>
    public string User(string userId) => Prefix + "user:" + userId;

    /// <summary>Integer micro-dollars: the user's spendable balance (ledger sum minus unsettled spend).</summary>
    public string Balance(string userId) => Prefix + "bal:" + userId;

    /// <summary>String, JSON array of <see cref="UpstreamProjection"/>.</summary>
    public string Upstreams => Prefix + "upstreams";

    /// <summary>Set when a full projection was written; its absence tells the operator Redis was emptied.</summary>
    public string Epoch => Prefix + "epoch";

    /// <summary>Pub/sub channel carrying <see cref="Invalidation"/> messages.</summary>
    public string InvalidationChannel => Prefix + "invalidate";

    /// <summary>Stream of usage events (XADD by the proxy, read by the ledger writer's consumer group).</summary>
    public string UsageStream => Prefix + "usage";

    /// <summary>Consumer group of the ledger writer on <see cref="UsageStream"/>.</summary>
    public const string UsageGroup = "ledger";
}

/// <summary>Invalidation messages on the invalidation channel.</summary>
public static class Invalidation
{
    public static string ForKey(string keyHash) => "key:" + keyHash;
    public static string ForUser(string userId) => "user:" + userId;
    public const string Upstreams = "upstreams";
    public const string All = "all";
}
