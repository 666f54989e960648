using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The scripts that put back what a lost projection (Redis flushed, or restarted without its data) took with it:
/// the charge of a request whose usage event or reservation vanished (<see cref="Recharge"/>, run by
/// <see cref="UsageOutbox"/>), and the return of a recharge that turned out to be a duplicate (<see cref="Refund"/>,
/// run by the ledger writer). See docs/reliability.md, "Redis flushed".
/// </summary>
internal static class RecoveryScripts
{
    /// <summary>
    /// Charges a request again after Redis lost its usage event or its reservation, and appends its usage event
    /// tagged as a recharge. KEYS: 1 balance, 2 key lifetime, 3 budget spent (the request's period), 4 usage stream.
    /// ARGV: 1 micros to charge, 2 tokens, 3 the recharge id (unique per attempt), 4.. the usage event's values in
    /// <see cref="UsageStreamFields.Names"/> order. Returns the stream entry id, or 0 when the user's balance is not
    /// rebuilt yet (try again later): a balance the operator seeds from the ledger afterwards would not include it.
    /// </summary>
    /// <remarks>
    /// The rebuilt balance is the ledger's sum when the operator seeded it, and the ledger never saw a lost event, so
    /// charging it here is right. If the event did reach the ledger after all (it was persisted before the loss but
    /// this replica had not yet seen that), the ledger writer finds the request id taken and refunds this charge
    /// (<see cref="Refund"/>). The key's lifetime spend and the budget are limits, not money: they keep the charge
    /// either way (at most over-counted by such a duplicate), and a budget period key that is gone is left alone.
    /// </remarks>
    public static readonly LuaScript Recharge = new("""
        if not redis.call('GET', KEYS[1]) then return 0 end
        redis.call('DECRBY', KEYS[1], ARGV[1])
        redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[2])
        redis.call('HINCRBY', KEYS[2], 'spend', ARGV[1])
        if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('INCRBY', KEYS[3], ARGV[1]) end
        return redis.call('XADD', KEYS[4], '*', XADD_FIELDS, 'recharge_id', ARGV[3], 'recharge_micros', ARGV[1])
        """.Replace("XADD_FIELDS", string.Join(", ", UsageStreamFields.Names.Select((name, i) => $"'{name}', ARGV[{4 + i}]")), StringComparison.Ordinal));

    /// <summary>
    /// Returns a recharge that the ledger already had (its request id was taken), once per recharge id.
    /// KEYS: 1 balance, 2 the recharge's refund marker. ARGV: 1 micros, 2 the marker's TTL ms.
    /// Returns 1 when refunded now, 0 when already refunded or the balance is gone (a rebuild then seeds it from the
    /// ledger, which has no trace of the recharge).
    /// </summary>
    public static readonly LuaScript Refund = new("""
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then return 0 end
        redis.call('INCRBY', KEYS[1], ARGV[1])
        return 1
        """);
}

/// <summary>The ledger writer's side of a recharge (<see cref="RecoveryScripts"/>).</summary>
public static class RechargeRefunds
{
    /// <summary>How long a refund marker is kept: longer than any recharge can wait in the stream.</summary>
    public static readonly TimeSpan MarkerTtl = TimeSpan.FromDays(7);

    /// <summary>Gives a recharge that duplicated a usage row back to the user's balance, once per recharge id.
    /// True when refunded by this call.</summary>
    public static async Task<bool> RefundAsync(IRedisClient redis, Gateway.Core.Projection.ProjectionKeys keys, string userId, string rechargeId, long micros, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(keys);
        var reply = await redis.EvalAsync(RecoveryScripts.Refund, [keys.Balance(userId), keys.RechargeRefund(userId, rechargeId)],
            [micros, (long)MarkerTtl.TotalMilliseconds], ct).ConfigureAwait(false);
        return reply.AsInt64() == 1;
    }
}
