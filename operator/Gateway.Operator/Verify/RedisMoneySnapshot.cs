using System.Globalization;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Operator.Projection;

namespace Gateway.Operator.Verify;

/// <summary>A user's money as Redis holds it.</summary>
internal sealed record RedisUserState(string? BalanceText, IReadOnlySet<string> CreditedGrants)
{
    /// <summary>Null when the key is missing or does not hold an integer.</summary>
    public long? BalanceMicros => long.TryParse(BalanceText, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var b) ? b : null;
}

/// <summary>One member of the reservations zset, with its hash's fields (null when the hash is gone).</summary>
internal sealed record RedisReservation(string RequestId, string? UserId, long ReservedMicros, long ExpiresAtMs, bool HasHash);

/// <summary>One member of the quota leases zset (hot path v2), with what its hash says (zeros when the hash is gone).</summary>
internal sealed record RedisLease(string LeaseId, string? UserId, long MoneyMicros, long UsedMicros, long ExpiresAtMs, bool HasHash)
{
    /// <summary>Money the lease still holds: taken from the balance at grant, not yet used by a flushed settlement.</summary>
    public long OutstandingMicros => MoneyMicros - UsedMicros;
}

/// <summary>One usage stream entry: only what the money identity needs.</summary>
internal sealed record RedisStreamUsage(string EntryId, string? RequestId, string? UserId, string? CostText)
{
    /// <summary>What settlement took from the balance for this event (cost rounded up to whole micro-dollars).</summary>
    public long? ChargedMicros =>
        decimal.TryParse(CostText, NumberStyles.Number, CultureInfo.InvariantCulture, out var c) && c >= 0 ? Money.ToMicrosCeiling(c) : null;

    public bool Readable => !string.IsNullOrEmpty(RequestId) && !string.IsNullOrEmpty(UserId) && ChargedMicros is not null;
}

/// <summary>Balances, credited grants, open reservations, leases and the usage stream, read in one atomic script per shard
/// (<see cref="ProjectionKeys.ShardOf"/>: a user's money never spans shards, so each user's figures are consistent).</summary>
internal sealed record RedisMoneySnapshot(
    DateTimeOffset RedisTime,
    IReadOnlyDictionary<string, RedisUserState> Users,
    IReadOnlyList<RedisReservation> Reservations,
    IReadOnlyList<RedisStreamUsage> Stream,
    IReadOnlyList<RedisLease> Leases)
{
    // One script, so no settlement (which moves money between the balance, a reservation and the stream in one
    // script of its own) can fall between two reads. It blocks Redis for as long as it reads: O(users +
    // reservations + stream length), a few ms normally; a stream backlog of 100,000 events costs more.
    // KEYS: 1 reservations zset, 2 usage stream, 3 leases zset, then per user its balance and its credited-grants set.
    // ARGV: 1 the reservation hash name's stem, 2 the lease hash name's stem.
    private static readonly LuaScript Script = new("""
        local t = redis.call('TIME')
        local users = {}
        for i = 4, #KEYS, 2 do
          users[#users + 1] = { redis.call('GET', KEYS[i]), redis.call('SMEMBERS', KEYS[i + 1]) }
        end
        local resv = {}
        local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
        for i = 1, #members, 2 do
          local h = redis.call('HMGET', ARGV[1] .. members[i], 'user_id', 'reserved', 'expires_at_ms')
          resv[#resv + 1] = { members[i], members[i + 1], h[1], h[2], h[3] }
        end
        local stream = {}
        for _, e in ipairs(redis.call('XRANGE', KEYS[2], '-', '+')) do
          local f, rid, uid, cost = e[2], false, false, false
          for j = 1, #f, 2 do
            local k = f[j]
            if k == 'request_id' then rid = f[j + 1] elseif k == 'user_id' then uid = f[j + 1] elseif k == 'cost' then cost = f[j + 1] end
          end
          stream[#stream + 1] = { e[1], rid, uid, cost }
        end
        local leases = {}
        local lm = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
        for i = 1, #lm, 2 do
          local h = redis.call('HMGET', ARGV[2] .. lm[i], 'user_id', 'money', 'used_money', 'expires_at_ms')
          leases[#leases + 1] = { lm[i], lm[i + 1], h[1], h[2], h[3], h[4] }
        end
        return { t[1], t[2], users, resv, stream, leases }
        """);

    /// <summary>Reads every shard (in parallel); <see cref="RedisTime"/> is the earliest of the shards' clocks, so nothing is
    /// judged past its expiry before every shard's read saw it so.</summary>
    public static async Task<RedisMoneySnapshot> ReadAsync(IRedisClient redis, ProjectionKeys keys, IReadOnlyList<string> userIds, CancellationToken ct)
    {
        var byShard = userIds.GroupBy(ProjectionKeys.ShardOf).ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.ToList());
        var shards = await Task.WhenAll(ProjectionKeys.Shards.Select(shard =>
            ReadShardAsync(redis, keys, shard, byShard.TryGetValue(shard, out var users) ? users : [], ct))).ConfigureAwait(false);
        var all = new Dictionary<string, RedisUserState>(userIds.Count, StringComparer.Ordinal);
        foreach (var s in shards)
            foreach (var (id, state) in s.Users) all[id] = state;
        return new RedisMoneySnapshot(shards.Min(s => s.RedisTime), all, shards.SelectMany(s => s.Reservations).ToList(),
            shards.SelectMany(s => s.Stream).ToList(), shards.SelectMany(s => s.Leases).ToList());
    }

    private static async Task<RedisMoneySnapshot> ReadShardAsync(IRedisClient redis, ProjectionKeys keys, int shard, IReadOnlyList<string> userIds, CancellationToken ct)
    {
        var scriptKeys = new List<RedisArg>(3 + 2 * userIds.Count) { keys.Reservations(shard), keys.UsageStream(shard), keys.Leases(shard) };
        foreach (var u in userIds)
        {
            scriptKeys.Add(keys.Balance(u));
            scriptKeys.Add(keys.BalanceGrants(u));
        }
        var reply = await redis.EvalAsync(Script, scriptKeys, [keys.Reservation(shard, ""), keys.Lease(shard, "")], ct).ConfigureAwait(false);
        var r = reply.Items;
        var time = DateTimeOffset.FromUnixTimeMilliseconds(r[0].AsInt64() * 1000 + r[1].AsInt64() / 1000);

        var users = new Dictionary<string, RedisUserState>(userIds.Count, StringComparer.Ordinal);
        var userItems = r[2].Items;
        for (var i = 0; i < userIds.Count; i++)
        {
            var u = userItems[i].Items;
            var grants = new HashSet<string>(StringComparer.Ordinal);
            foreach (var g in u[1].Items) grants.Add(g.AsString()!);
            users[userIds[i]] = new RedisUserState(u[0].IsNull ? null : u[0].AsString(), grants);
        }

        var reservations = new List<RedisReservation>();
        foreach (var item in r[3].Items)
        {
            var f = item.Items;
            var hasHash = !f[2].IsNull || !f[3].IsNull || !f[4].IsNull;
            reservations.Add(new RedisReservation(f[0].AsString()!, f[2].IsNull ? null : f[2].AsString(),
                Long(f[3]), hasHash ? Long(f[4]) : Long(f[1]), hasHash));
        }

        var stream = new List<RedisStreamUsage>();
        foreach (var item in r[4].Items)
        {
            var f = item.Items;
            stream.Add(new RedisStreamUsage(f[0].AsString()!, Text(f[1]), Text(f[2]), Text(f[3])));
        }
        var leases = new List<RedisLease>();
        foreach (var item in r[5].Items)
        {
            var f = item.Items;
            var hasHash = !f[3].IsNull;
            leases.Add(new RedisLease(f[0].AsString()!, Text(f[2]), Long(f[3]), Long(f[4]), hasHash ? Long(f[5]) : Long(f[1]), hasHash));
        }
        return new RedisMoneySnapshot(time, users, reservations, stream, leases);
    }

    private static string? Text(RespValue v) => v.IsNull ? null : v.AsString();

    // Redis returns zset scores as text, possibly with a fraction.
    private static long Long(RespValue v) =>
        v.IsNull ? 0 : decimal.TryParse(v.AsString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? (long)d : 0;
}
