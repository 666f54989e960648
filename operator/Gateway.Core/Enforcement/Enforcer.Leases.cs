using System.Buffers;
using System.Globalization;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// Quota leases (Hot path v2 in DESIGN): one script call grants a (user, key) pair a slice of money and of the current
/// windows' allowances, counted in Redis when granted, so that the same checks the Admit script makes can be made
/// locally; returning the lease gives back what was not used. Concurrency limits are not leased: a pair with
/// maxConcurrent is admitted exactly.
/// </summary>
public sealed partial class Enforcer
{
    /// <summary>Grants a lease, or says which dimension is too close to its limit (nothing changed then).</summary>
    /// <exception cref="ProjectionMissingException">The user has no balance in Redis (the projection is being rebuilt).</exception>
    /// <exception cref="InvalidOperationException">The lease id is taken.</exception>
    public async Task<LeaseGrant> GrantLeaseAsync(LeaseRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfNegative(request.Money, nameof(request));
        ArgumentOutOfRangeException.ThrowIfNegative(request.Requests, nameof(request));
        ArgumentOutOfRangeException.ThrowIfNegative(request.Tokens, nameof(request));
        ArgumentOutOfRangeException.ThrowIfLessThan(request.HeadroomFactor, 1, nameof(request));
        if (request.Ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(request), "The lease TTL must be positive.");
        var now = _time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var kl = request.Key.Limits;
        var ul = request.User.Limits;
        var userId = request.User.UserId;
        var userNames = _names.ForUser(userId);
        var keyNames = _names.ForKey(request.Key.KeyId);

        // The slices are counted in this minute's and this day's windows, so the lease ends with the minute; the money
        // is counted in the budget period, so it ends with the period too.
        var expiryMs = Math.Min(nowMs + (long)request.Ttl.TotalMilliseconds, (nowMs / MinuteMs + 1) * MinuteMs);
        string budgetKey = userNames.BudgetNone;
        long budgetMicros = -1, periodEndMs = 0;
        if (request.User.Budget is { } budget)
        {
            budgetMicros = Money.ToMicrosFloor(budget.Amount);
            if (CurrentPeriod(budget.Period, budget.Timezone, now) is { } p)
            {
                budgetKey = userNames.BudgetKey(p);
                periodEndMs = p.End.ToUnixTimeMilliseconds();
                expiryMs = Math.Min(expiryMs, periodEndMs);
            }
        }

        var numbers = ArrayPool<byte>.Shared.Rent(LeaseScripts.GrantNumbers * sizeof(long));
        RespValue reply;
        try
        {
            var n = numbers.AsSpan();
            Pack(ref n, nowMs); Pack(ref n, expiryMs); Pack(ref n, request.Money); Pack(ref n, request.Requests); Pack(ref n, request.Tokens);
            Pack(ref n, Limit(kl?.RequestsPerMinute)); Pack(ref n, Limit(kl?.RequestsPerDay)); Pack(ref n, Limit(kl?.TokensPerMinute)); Pack(ref n, Limit(kl?.TokensPerDay));
            Pack(ref n, Limit(ul?.RequestsPerMinute)); Pack(ref n, Limit(ul?.RequestsPerDay)); Pack(ref n, Limit(ul?.TokensPerMinute)); Pack(ref n, Limit(ul?.TokensPerDay));
            Pack(ref n, Limit(kl?.TokenLimit)); Pack(ref n, kl?.SpendLimit is { } spend ? Money.ToMicrosFloor(spend) : -1L);
            Pack(ref n, budgetMicros); Pack(ref n, periodEndMs); Pack(ref n, request.HeadroomFactor);
            RedisArg[] keys = [keyNames.RateCounters, userNames.RateCounters, keyNames.Lifetime, userNames.Balance, budgetKey, _keys.Leases, _keys.Lease(request.LeaseId)];
            RedisArg[] args =
            [
                nowMs, request.LeaseId, nowMs / MinuteMs, nowMs / DayMs, periodEndMs > 0 ? periodEndMs - nowMs + BudgetKeyGraceMs : 0,
                request.Owner, request.Key.KeyId, userId, new ReadOnlyMemory<byte>(numbers, 0, LeaseScripts.GrantNumbers * sizeof(long)),
            ];
            reply = await _redis.EvalAsync(LeaseScripts.Grant, keys, args, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(numbers);
        }
        var r = reply.Items;
        switch (r[0].AsInt64())
        {
            case -2: throw new ProjectionMissingException();
            case -1: throw new InvalidOperationException("A lease with this id already exists; lease ids must be unique.");
            case 0: return new LeaseGrant(null, (RejectionReason)r[1].AsInt64());
        }
        return new LeaseGrant(new QuotaLease
        {
            LeaseId = request.LeaseId,
            KeyId = request.Key.KeyId,
            UserId = userId,
            BudgetKey = budgetKey,
            Money = request.Money,
            Requests = request.Requests,
            Tokens = request.Tokens,
            GrantedAt = now,
            ExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(expiryMs),
        }, RejectionReason.None);
    }

    /// <summary>Returns a lease: what it did not use (by the usage flushed against it) goes back. Null when it was
    /// already returned or reclaimed.</summary>
    public Task<LeaseRemainder?> ReturnLeaseAsync(QuotaLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        return EndLeaseAsync(lease.LeaseId, lease.KeyId, lease.UserId, lease.BudgetKey, "return", cancellationToken);
    }

    /// <summary>The sweeper's side: reclaims a lease whose owner stopped renewing it, once it has expired. Null when it is
    /// gone or has not expired yet.</summary>
    public async Task<LeaseRemainder?> ReclaimLeaseAsync(string leaseId, CancellationToken cancellationToken = default)
    {
        var v = (await _redis.ExecuteAsync("HMGET", [_keys.Lease(leaseId), "key_id", "user_id", "budget_key"], cancellationToken).ConfigureAwait(false)).Items;
        if (v[0].IsNull || v[1].IsNull || v[2].IsNull) return null;
        return await EndLeaseAsync(leaseId, v[0].AsString()!, v[1].AsString()!, v[2].AsString()!, "expire", cancellationToken).ConfigureAwait(false);
    }

    private async Task<LeaseRemainder?> EndLeaseAsync(string leaseId, string keyId, string userId, string budgetKey, string mode, CancellationToken cancellationToken)
    {
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var keyNames = _names.ForKey(keyId);
        var userNames = _names.ForUser(userId);
        RedisArg[] keys = [keyNames.RateCounters, userNames.RateCounters, keyNames.Lifetime, userNames.Balance, budgetKey, _keys.Leases, _keys.Lease(leaseId)];
        RedisArg[] args = [nowMs, leaseId, nowMs / MinuteMs, nowMs / DayMs, mode];
        var r = (await _redis.EvalAsync(LeaseScripts.Return, keys, args, cancellationToken).ConfigureAwait(false)).Items;
        if (r[0].AsInt64() != 1) return null;
        return new LeaseRemainder(
            long.Parse(r[1].AsString()!, CultureInfo.InvariantCulture),
            long.Parse(r[2].AsString()!, CultureInfo.InvariantCulture),
            long.Parse(r[3].AsString()!, CultureInfo.InvariantCulture));
    }
}
