using System.Globalization;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;

namespace Gateway.Core.Enforcement;

/// <summary>Reservation expiry: the sweeper's side of <see cref="Enforcer"/> (a replica died with requests in flight).</summary>
public sealed partial class Enforcer
{
    /// <summary>
    /// For the ledger writer: charges up to <paramref name="max"/> reservations whose lease passed at
    /// <paramref name="now"/> at their reserved amount, frees their slots and appends a usage event for each
    /// (status 0, estimated, cost = reservation, same request id). Each reservation is ended by one atomic
    /// script, so a settlement racing with it either wins (expiry does nothing) or finds it gone.
    /// Returns the request ids charged. Each shard's reservation set is read (at most <paramref name="max"/> from each).
    /// </summary>
    public async Task<IReadOnlyList<string>> ExpireReservationsAsync(DateTimeOffset now, int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        var nowMs = now.ToUnixTimeMilliseconds();
        var perShard = await Task.WhenAll(ProjectionKeys.Shards.Select(shard => ExpireShardAsync(shard, nowMs, max, cancellationToken))).ConfigureAwait(false);
        return perShard.SelectMany(ids => ids).ToList();
    }

    private async Task<List<string>> ExpireShardAsync(int shard, long nowMs, int max, CancellationToken cancellationToken)
    {
        var reservations = _keys.Reservations(shard);
        var due = await _redis.ExecuteAsync("ZRANGEBYSCORE", [reservations, "-inf", nowMs, "LIMIT", 0, max], cancellationToken).ConfigureAwait(false);
        var ids = due.Items.Select(i => i.AsString()!).ToArray();
        var results = await Task.WhenAll(ids.Select(id => ExpireOneAsync(shard, id, nowMs, cancellationToken))).ConfigureAwait(false);
        var expired = new List<string>();
        for (var i = 0; i < ids.Length; i++)
            if (results[i]) expired.Add(ids[i]);
        return expired;
    }

    private async Task<bool> ExpireOneAsync(int shard, string requestId, long nowMs, CancellationToken cancellationToken)
    {
        var reservationKey = _keys.Reservation(shard, requestId);
        var f = await ReadReservationAsync(reservationKey, cancellationToken).ConfigureAwait(false);
        if (f is null)
        {
            // Settlement removes the hash and the zset member together, so this is only a leftover member.
            await _redis.ExecuteAsync("ZREM", [_keys.Reservations(shard), requestId], cancellationToken).ConfigureAwait(false);
            return false;
        }
        long L(string name) => f.TryGetValue(name, out var v) && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0;
        string S(string name) => f.TryGetValue(name, out var v) ? v : "";
        var startedMs = L("started_at_ms");
        var usage = new UsageEvent
        {
            RequestId = requestId,
            KeyId = S("key_id"),
            KeyVersion = (int)L("key_version"),
            UserId = S("user_id"),
            Upstream = S("upstream"),
            Model = S("model"),
            Route = S("route"),
            Tokens = new TokenCounts(L("est_in"), 0, 0, L("est_out")),
            Cost = Money.FromMicros(L("reserved")),
            PriceVersion = S("price_version"),
            StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(startedMs),
            DurationMs = (int)Math.Clamp(nowMs - startedMs, 0, int.MaxValue),
            Status = 0,
            Estimated = true,
            // The request's outcome is unknown (its settlement never arrived): charged at its reservation.
            ErrorCode = UsageErrorCodes.ReservationExpired,
        };
        var args = new RedisArgBuffer(FinishFixedArgs + UsageStreamFields.Names.Length);
        AddUnstampedFinishArgs(args, nowMs, requestId, "expire", 0, 0);
        UsageStreamFields.AddValuesTo(args, usage);
        var keys = new RedisArgBuffer(10);
        AddFinishKeys(keys, reservationKey, usage.KeyId, _names.ForUser(usage.UserId), S("budget_key"));
        var reply = await _redis.EvalAsync(EnforcementScripts.Finish, keys, args, cancellationToken).ConfigureAwait(false);
        if (reply.Type != RespType.BulkString) return false;
        _outbox?.Written(reply.AsString()!, usage, L("reserved"), S("budget_key"));
        Log.ReservationExpired(_logger, requestId, usage.Cost);
        return true;
    }
}
