namespace Gateway.Core.Projection;

/// <summary>
/// The Redis layout shared by the operator (writer of the projection) and the proxy (reader, and
/// writer of counters and usage events). The projection can always be rebuilt from PostgreSQL.
/// </summary>
/// <remarks>
/// <para><b>Hash tags (Redis Cluster).</b> Every Lua script and multi-key command touches one slot, so the same code runs
/// on a single Redis and on Redis Cluster (DESIGN "Hot path v2"):</para>
/// <list type="bullet">
/// <item>Everything a user's requests count, hold or spend — balance, budget, rate windows and in-flight sets of the user
/// and of each of its keys, key lifetimes, reservations, quota leases, usage events — lives in one of
/// <see cref="ShardCount"/> <b>shards</b>, chosen by the user id (<see cref="ShardOf"/>); each shard's keys share a hash tag
/// (<c>{u3-10}</c>), and each shard has its own usage stream, reservation set and lease set. The tags are chosen so shard
/// <c>i</c> falls in the i-th sixteenth of the slot space: a cluster that splits the slots evenly spreads the shards evenly.</item>
/// <item>The projection's shared entries (keys, users, upstreams, epoch) carry the tag <c>{meta}</c>, so a key and the
/// epoch are read in one MGET; the upstream accounts' runtime counters carry <c>{up}</c>, so one script syncs them all.</item>
/// </list>
/// <para>A key given to another owner starts new rate windows in the new owner's shard (the old ones expire); its lifetime
/// tokens and spend are seeded there from usage_log by the ApiKey reconcile before the projection names the new owner
/// (usage still in flight or not yet in usage_log at that moment stays counted under the old owner).</para>
/// </remarks>
public sealed class ProjectionKeys
{
    public const string DefaultPrefix = "tg:";

    /// <summary>How many shards the per-user data is spread over. Fixed: changing it moves every user's keys.</summary>
    public const int ShardCount = 16;

    // Tag i hashes (CRC16 mod 16384) into slots [1024 i, 1024 (i + 1)); pinned by ProjectionKeysTests.
    private static readonly string[] ShardTags =
    [
        "{u0-20}", "{u1-23}", "{u2-13}", "{u3-10}", "{u4-3}", "{u5-0}", "{u6-63}", "{u7-60}",
        "{u8-13}", "{u9-10}", "{u10-12}", "{u11-11}", "{u12-20}", "{u13-23}", "{u14-0}", "{u15-3}",
    ];

    private readonly string[] _shardPrefixes;
    private readonly string _meta;
    private readonly string _up;

    public ProjectionKeys(string prefix = DefaultPrefix)
    {
        Prefix = prefix;
        _shardPrefixes = new string[ShardCount];
        for (var i = 0; i < ShardCount; i++) _shardPrefixes[i] = prefix + ShardTags[i] + ":";
        _meta = prefix + "{meta}:";
        _up = prefix + "{up}:";
    }

    /// <summary>The prefix of every key and channel; configurable so tests and tenants can share a server.</summary>
    public string Prefix { get; }

    /// <summary>The shard holding the user's counters, money, reservations, leases and usage events: FNV-1a of the
    /// user id's UTF-16 code units, mod <see cref="ShardCount"/>. Stable across processes and versions.</summary>
    public static int ShardOf(string userId)
    {
        ArgumentNullException.ThrowIfNull(userId);
        var hash = 2166136261u;
        foreach (var c in userId)
        {
            hash = (hash ^ c) * 16777619u;
        }
        return (int)(hash % ShardCount);
    }

    /// <summary>Every shard number, 0 to <see cref="ShardCount"/> − 1.</summary>
    public static IEnumerable<int> Shards => Enumerable.Range(0, ShardCount);

    /// <summary>The hash tag of a shard, e.g. "{u3-10}".</summary>
    public static string ShardTag(int shard) => ShardTags[shard];

    /// <summary>The common start of every key of a shard: prefix + tag + ":".</summary>
    public string ShardPrefix(int shard) => _shardPrefixes[shard];

    private string OfUser(string userId) => _shardPrefixes[ShardOf(userId)];

    /// <summary>String, JSON <see cref="KeyProjection"/>, by key hash (hex HMAC).</summary>
    public string Key(string keyHash) => _meta + "key:" + keyHash;

    /// <summary>String, JSON <see cref="UserProjection"/>, by user id.</summary>
    public string User(string userId) => _meta + "user:" + userId;

    /// <summary>Integer micro-dollars: the user's spendable balance (ledger sum minus unsettled spend).</summary>
    public string Balance(string userId) => OfUser(userId) + "bal:" + userId;

    /// <summary>SET of the grant ids the user's Redis balance has been credited with (so a grant is credited once,
    /// ProjectionWriter).</summary>
    public string BalanceGrants(string userId) => OfUser(userId) + "grants:" + userId;

    /// <summary>String, JSON array of <see cref="UpstreamProjection"/>.</summary>
    public string Upstreams => _meta + "upstreams";

    /// <summary>Set (only when absent) when a full projection was written, to the Redis time in unix ms at which that build
    /// began; its absence tells the operator Redis was emptied, and a new value tells every process's UsageOutbox that
    /// Redis lost its data since it last looked.</summary>
    public string Epoch => _meta + "epoch";

    /// <summary>String: the epoch a rebuild in progress will mark; a rebuild that finds it gone at the end (Redis lost its
    /// data again meanwhile) does not mark the projection complete.</summary>
    public string Rebuilding => _meta + "rebuilding";

    /// <summary>String: set when the ledger writer refunded one recharge (a usage event charged again after Redis lost its data
    /// that turned out to be in the ledger already), so the refund happens once. Expires after a week.</summary>
    public string RechargeRefund(string userId, string rechargeId) => OfUser(userId) + "recharge-refund:" + rechargeId;

    /// <summary>Pub/sub channel carrying <see cref="Invalidation"/> messages.</summary>
    public string InvalidationChannel => Prefix + "invalidate";

    /// <summary>A shard's stream of usage events (XADD by the proxy, read by the ledger writer's consumer group).</summary>
    public string UsageStream(int shard) => _shardPrefixes[shard] + "usage";

    /// <summary>The usage stream of the layout before hash tags (one stream for all users). The ledger writer drains it
    /// after an upgrade; nothing writes it any more.</summary>
    public string LegacyUsageStream => Prefix + "usage";

    /// <summary>Consumer group of the ledger writer on <see cref="UsageStream"/>.</summary>
    public const string UsageGroup = "ledger";

    // Enforcement counters (written by the proxy's Enforcer scripts; see Gateway.Core/Enforcement).

    /// <summary>HASH of the key's rate windows (requests and tokens, per minute and per UTC day), by api_keys.id.
    /// Fields rm_i/rm_c/rm_p (requests, minute index, current and previous minute), tm_* (tokens per minute),
    /// rd_i/rd_c and td_i/td_c (requests and tokens, UTC day index and count). Expires at the end of the UTC day after the day of its last write.</summary>
    public string KeyRateCounters(string userId, string keyId) => OfUser(userId) + "rl:key:" + keyId;

    /// <summary>HASH of the user's rate windows, same fields as <see cref="KeyRateCounters"/>, by users.id.</summary>
    public string UserRateCounters(string userId) => OfUser(userId) + "rl:user:" + userId;

    /// <summary>ZSET of the key's in-flight request ids scored by lease expiry (unix ms); expired members are
    /// orphans of a killed pod and stop counting against maxConcurrent.</summary>
    public string KeyInflight(string userId, string keyId) => OfUser(userId) + "inflight:key:" + keyId;

    /// <summary>ZSET of the user's in-flight request ids scored by lease expiry (unix ms).</summary>
    public string UserInflight(string userId) => OfUser(userId) + "inflight:user:" + userId;

    /// <summary>HASH {tokens, spend}: the key's lifetime tokens and spend in micro-dollars, including reservations in
    /// flight; checked against tokenLimit and spendLimit. Never expires; the operator seeds it from usage_log when Redis lost it (ProjectionSeeder).</summary>
    public string KeyLifetime(string userId, string keyId) => OfUser(userId) + "life:key:" + keyId;

    /// <summary>Integer micro-dollars the user spent in one budget period, including reservations in flight.
    /// <paramref name="periodId"/> is the period start as unix seconds (UTC), or "none" for a budget that never resets.
    /// Expires a week after the period ends.</summary>
    public string BudgetSpent(string userId, string periodId) => OfUser(userId) + "budget:" + userId + ":" + periodId;

    /// <summary>ZSET of open reservations (request ids) scored by lease expiry (unix ms); the ledger writer charges
    /// the ones whose lease passed (Enforcer.ExpireReservationsAsync).</summary>
    public string Reservations(int shard) => _shardPrefixes[shard] + "reservations";

    /// <summary>HASH of one open reservation: key_id, key_version, user_id, reserved (micros), est_in, est_out,
    /// model, route, upstream, price_version, started_at_ms, expires_at_ms, budget_key, min_idx, day_idx.
    /// Deleted by settlement, release or expiry; its absence makes those idempotent.</summary>
    public string Reservation(int shard, string requestId) => _shardPrefixes[shard] + "resv:" + requestId;

    /// <summary>The reservation hash of a request of <paramref name="userId"/> (in the user's shard).</summary>
    public string Reservation(string userId, string requestId) => OfUser(userId) + "resv:" + requestId;

    /// <summary>HASH of one quota lease (Hot path v2, <see cref="Enforcement.QuotaLeases"/>): user_id, key_id, owner,
    /// money (micros), requests, tokens granted; used_money, used_tokens, used_requests as flushed with the usage events;
    /// min_idx, day_idx (the windows the grant was counted in), budget_key, granted_at_ms, expires_at_ms. Deleted when
    /// the lease is returned or reclaimed; never expires by itself (its unused money must go back).</summary>
    public string Lease(int shard, string leaseId) => _shardPrefixes[shard] + "lease:" + leaseId;

    /// <summary>The hash of a quota lease of <paramref name="userId"/> (in the user's shard).</summary>
    public string Lease(string userId, string leaseId) => OfUser(userId) + "lease:" + leaseId;

    /// <summary>HASH of the requests in flight under one quota lease: request id → "reserved|est_in|est_out|key_version|
    /// started_at_ms|route|upstream|price_version|model" (flushed with the usage batches). When the lease ends with requests
    /// in flight, each becomes an ordinary reservation (<see cref="Reservation"/>), settled or expired as in exact mode.</summary>
    public string LeaseInflight(int shard, string leaseId) => _shardPrefixes[shard] + "lease-inflight:" + leaseId;

    /// <summary>The in-flight hash of a quota lease of <paramref name="userId"/> (in the user's shard).</summary>
    public string LeaseInflight(string userId, string leaseId) => OfUser(userId) + "lease-inflight:" + leaseId;

    /// <summary>ZSET of open quota leases (lease ids) scored by expiry (unix ms); the sweeper reclaims those past it.</summary>
    public string Leases(int shard) => _shardPrefixes[shard] + "leases";

    /// <summary>SET of the ids of <paramref name="userId"/>'s open quota leases (every replica's), added by the grant and
    /// removed by the return or reclaim: lets a usage report count what the user's leases hold but have not used
    /// without reading every lease of the shard.</summary>
    public string UserLeases(string userId) => OfUser(userId) + "user-leases:" + userId;

    /// <summary>HASH {requests, tokens}: what every proxy replica sent to one upstream account in one UTC minute
    /// (<paramref name="minuteIndex"/> = unix seconds / 60), by account name ("namespace/name"). Each replica adds its
    /// own counts about once a second (HINCRBY) and reads the totals back; expires two minutes after its last write.</summary>
    public string UpstreamUsage(string account, long minuteIndex) =>
        _up + "upstream-usage:" + account + ":" + minuteIndex.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>HASH: requests every proxy replica has in flight to one upstream account (accounts with maxConcurrent),
    /// field = replica id, value = "count:server unix ms" of its last sync; fields not refreshed for a few syncs are
    /// dropped (a killed replica). By account name.</summary>
    public string UpstreamInFlight(string account) => _up + "upstream-inflight:" + account;

    /// <summary>String: when (unix ms) a proxy last saw the OAuth account's upstream answer 401, asking the operator to
    /// refresh its access token now rather than at <c>oauth.refreshBefore</c>. The account sits in a hash tag, as the
    /// operator's other OAuth keys do. Expires after 10 minutes.</summary>
    public string UpstreamRefreshRequest(string account) => Prefix + "oauth:{" + account + "}:refresh-request";

    /// <summary>String: until when (unix ms) one upstream account cools down, by account name, shared by every proxy
    /// replica (an upstream 429 with Retry-After or rate-limit reset headers, or the circuit breaker opening). A replica
    /// only ever moves it later; it expires at that instant. The portal's admin overview reads it.</summary>
    public string UpstreamCooldown(string account) => _up + "upstream-cooldown:" + account;

    /// <summary>HASH: one upstream account's requests and tokens in rolling windows (1m, 5h, 1d, 7d), as buckets and
    /// running totals kept by <see cref="UpstreamWindows"/>; written by every proxy replica, read by the operator for
    /// status. Expires a week after its last write.</summary>
    public string UpstreamWindows(string account) => _up + "upstream-windows:" + account;

    /// <summary>String: the fencing value of the operator replica refreshing the OAuth account's token (SET NX PX);
    /// present only while a refresh runs. The proxies read it to steer traffic away during the refresh.</summary>
    public string UpstreamRefreshLease(string account) => Prefix + "oauth:{" + account + "}:lease";
}

/// <summary>Invalidation messages on the invalidation channel.</summary>
public static class Invalidation
{
    public static string ForKey(string keyHash) => "key:" + keyHash;
    public static string ForUser(string userId) => "user:" + userId;
    public const string Upstreams = "upstreams";
    public const string All = "all";
}
