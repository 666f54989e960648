using System.Buffers;
using System.Globalization;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// Quota leases (Hot path v2 in DESIGN): one script call grants a (user, key) pair a slice of money and of the current
/// windows' allowances, counted in Redis when granted, so that the same checks the Admit script makes can be made
/// locally; returning the lease gives back what was not used. Where a concurrency limit applies the lease also holds
/// concurrency slots (members of the in-flight zsets, scored by its expiry).
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
        ArgumentOutOfRangeException.ThrowIfNegative(request.Slots, nameof(request));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(request.Slots, 4_096, nameof(request));
        if (request.Ttl <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(request), "The lease TTL must be positive.");
        var now = _time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var kl = request.Key.Limits;
        var ul = request.User.Limits;
        var userId = request.User.UserId;
        var userNames = _names.ForUser(userId);
        var keyNames = _names.ForKey(userId, request.Key.KeyId);

        // The slices are counted in this minute's and this day's windows: where a minute (day) limit applies, the lease
        // ends with the minute (day), so nothing admitted under it lands in a window that did not count it. The money is
        // counted in the budget period, so it ends with the period too.
        var expiryMs = nowMs + (long)request.Ttl.TotalMilliseconds;
        if (kl?.RequestsPerMinute is not null || kl?.TokensPerMinute is not null || ul?.RequestsPerMinute is not null || ul?.TokensPerMinute is not null)
            expiryMs = Math.Min(expiryMs, (nowMs / MinuteMs + 1) * MinuteMs);
        if (kl?.RequestsPerDay is not null || kl?.TokensPerDay is not null || ul?.RequestsPerDay is not null || ul?.TokensPerDay is not null)
            expiryMs = Math.Min(expiryMs, (nowMs / DayMs + 1) * DayMs);
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
            Pack(ref n, request.Slots); Pack(ref n, Limit(kl?.MaxConcurrent)); Pack(ref n, Limit(ul?.MaxConcurrent));
            RedisArg[] keys = [keyNames.RateCounters, userNames.RateCounters, keyNames.Lifetime, userNames.Balance, budgetKey, userNames.Leases, _keys.Lease(userNames.Shard, request.LeaseId),
                keyNames.Inflight, userNames.Inflight, userNames.LeaseIds];
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
            Slots = request.Key.Limits?.MaxConcurrent is not null || request.User.Limits?.MaxConcurrent is not null ? request.Slots : 0,
            GrantedAt = now,
            ExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(expiryMs),
            Counts = WindowCounts.Read(r, 1),
        }, RejectionReason.None);
    }

    /// <summary>
    /// What the open leases of a user (every replica's) hold but have not used: granted less what the usage flushed
    /// against them says was used. A grant counts its whole slice in the balance, the budget and the key's lifetime
    /// tokens and spend at once, so a report of what was used adds this back (exact mode holds only the requests in
    /// flight). Requests in flight under a lease are not counted here until they settle. Not atomic with other reads: a
    /// lease granted or returned in between can make a report briefly off by its slice.
    /// </summary>
    public async Task<LeaseHoldings> LeaseHoldingsAsync(string userId, string keyId, string budgetKey, CancellationToken cancellationToken = default)
    {
        var names = _names.ForUser(userId);
        var ids = (await _redis.ExecuteAsync("SMEMBERS", [names.LeaseIds], cancellationToken).ConfigureAwait(false)).Items;
        if (ids.Count == 0) return default;
        // Issued together: the client pipelines them on one connection.
        var reads = new Task<RespValue>[ids.Count];
        for (var i = 0; i < reads.Length; i++)
            reads[i] = _redis.ExecuteAsync("HMGET", [_keys.Lease(names.Shard, ids[i].AsString()!), "key_id", "budget_key", "money", "used_money", "tokens", "used_tokens"],
                cancellationToken);
        long money = 0, budget = 0, keyMoney = 0, keyTokens = 0;
        foreach (var read in reads)
        {
            var v = (await read.ConfigureAwait(false)).Items;
            // Returned since the set was read (or lost with Redis' data).
            if (v[0].IsNull) continue;
            var heldMoney = Math.Max(0, Number(v[2]) - Number(v[3]));
            var heldTokens = Math.Max(0, Number(v[4]) - Number(v[5]));
            money += heldMoney;
            if (string.Equals(v[1].AsString(), budgetKey, StringComparison.Ordinal)) budget += heldMoney;
            if (string.Equals(v[0].AsString(), keyId, StringComparison.Ordinal))
            {
                keyMoney += heldMoney;
                keyTokens += heldTokens;
            }
        }
        return new LeaseHoldings(money, budget, keyMoney, keyTokens);

        static long Number(RespValue v) =>
            !v.IsNull && long.TryParse(v.AsString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : 0;
    }

    /// <summary>Returns a lease: what it did not use (by the usage flushed against it) goes back; requests still in flight
    /// under it become ordinary reservations (settle them with <see cref="SettleAsync"/>). Null when it was already
    /// returned or reclaimed.</summary>
    public Task<LeaseRemainder?> ReturnLeaseAsync(QuotaLease lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var handoverMs = _time.GetUtcNow().ToUnixTimeMilliseconds() + (long)_options.DefaultLease.TotalMilliseconds;
        return EndLeaseAsync(lease.LeaseId, lease.KeyId, lease.UserId, lease.BudgetKey, "return", handoverMs, cancellationToken);
    }

    /// <summary>The sweeper's side: reclaims a lease whose owner stopped renewing it, once it has expired; its requests in
    /// flight become reservations that expire at once (charged at their reservation by the reservation sweeper). Null when
    /// it is gone or has not expired yet.</summary>
    public async Task<LeaseRemainder?> ReclaimLeaseAsync(int shard, string leaseId, CancellationToken cancellationToken = default)
    {
        var v = (await _redis.ExecuteAsync("HMGET", [_keys.Lease(shard, leaseId), "key_id", "user_id", "budget_key"], cancellationToken).ConfigureAwait(false)).Items;
        if (v[0].IsNull || v[1].IsNull || v[2].IsNull) return null;
        return await EndLeaseAsync(leaseId, v[0].AsString()!, v[1].AsString()!, v[2].AsString()!, "expire",
            _time.GetUtcNow().ToUnixTimeMilliseconds(), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>For the sweeper: reclaims up to <paramref name="max"/> leases that expired before <paramref name="expiredBefore"/>
    /// (their replica did not return them), from each shard's lease set. Returns how many were reclaimed.</summary>
    public async Task<int> ReclaimExpiredLeasesAsync(DateTimeOffset expiredBefore, int max, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        var counts = await Task.WhenAll(ProjectionKeys.Shards.Select(shard => ReclaimExpiredLeasesAsync(shard, expiredBefore, max, cancellationToken)))
            .ConfigureAwait(false);
        return counts.Sum();
    }

    private async Task<int> ReclaimExpiredLeasesAsync(int shard, DateTimeOffset expiredBefore, int max, CancellationToken cancellationToken)
    {
        var leases = _keys.Leases(shard);
        var due = await _redis.ExecuteAsync("ZRANGEBYSCORE", [leases, "-inf", expiredBefore.ToUnixTimeMilliseconds(), "LIMIT", 0, max], cancellationToken)
            .ConfigureAwait(false);
        var reclaimed = 0;
        foreach (var id in due.Items.Select(i => i.AsString()!))
        {
            if (await ReclaimLeaseAsync(shard, id, cancellationToken).ConfigureAwait(false) is not null) reclaimed++;
            // A member whose hash is gone is a leftover: drop it.
            else if ((await _redis.ExecuteAsync("EXISTS", [_keys.Lease(shard, id)], cancellationToken).ConfigureAwait(false)).AsInt64() == 0)
                await _redis.ExecuteAsync("ZREM", [leases, id], cancellationToken).ConfigureAwait(false);
        }
        return reclaimed;
    }

    /// <summary>
    /// Writes one flush of leased traffic in one script call: in-flight records of admitted requests, usage events of
    /// settled ones (held by the usage outbox like any other), and what they used, per lease. A lease that is gone
    /// (reclaimed, or lost with Redis' data) gets nothing written; its settlements go to the usage outbox as lost, which
    /// charges them again once the user's balance is there (a duplicate of a row the ledger has is refunded).
    /// </summary>
    /// <remarks>Leases of users in different shards are written by one script call per shard (each touches one slot),
    /// sent together.</remarks>
    public async Task<IReadOnlyList<LeaseFlushResult>> FlushLeasedAsync(IReadOnlyList<LeaseFlush> flushes, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(flushes);
        if (flushes.Count == 0) return [];
        var shard = ProjectionKeys.ShardOf(flushes[0].Lease.UserId);
        var oneShard = true;
        for (var i = 1; i < flushes.Count && oneShard; i++) oneShard = ProjectionKeys.ShardOf(flushes[i].Lease.UserId) == shard;
        if (oneShard) return await FlushShardAsync(shard, flushes, cancellationToken).ConfigureAwait(false);

        var groups = flushes.Select((f, i) => (f, i)).GroupBy(x => ProjectionKeys.ShardOf(x.f.Lease.UserId)).ToArray();
        var replies = await Task.WhenAll(groups.Select(g => FlushShardAsync(g.Key, g.Select(x => x.f).ToArray(), cancellationToken))).ConfigureAwait(false);
        var results = new LeaseFlushResult[flushes.Count];
        for (var g = 0; g < groups.Length; g++)
        {
            var j = 0;
            foreach (var (_, index) in groups[g]) results[index] = replies[g][j++];
        }
        return results;
    }

    private async Task<LeaseFlushResult[]> FlushShardAsync(int shard, IReadOnlyList<LeaseFlush> flushes, CancellationToken cancellationToken)
    {
        var keys = RedisArgBuffer.Rent();
        var args = RedisArgBuffer.Rent();
        RespValue reply;
        try
        {
            keys.Add(_keys.UsageStream(shard));
            args.Add(flushes.Count);
            foreach (var f in flushes)
            {
                keys.Add(_keys.Lease(shard, f.Lease.LeaseId));
                keys.Add(_keys.LeaseInflight(shard, f.Lease.LeaseId));
                args.Add(f.Lease.LeaseId); args.Add(f.Admissions.Count); args.Add(f.Settlements.Count); args.Add(f.Releases.Count);
                foreach (var a in f.Admissions)
                {
                    args.Add(a.RequestId);
                    args.Add(string.Join('|', a.ReservedMicros.ToString(CultureInfo.InvariantCulture), a.EstimatedInputTokens.ToString(CultureInfo.InvariantCulture),
                        a.MaxOutputTokens.ToString(CultureInfo.InvariantCulture), a.KeyVersion.ToString(CultureInfo.InvariantCulture),
                        a.StartedAt.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture), a.Route, a.Upstream, a.PriceVersion, a.Model));
                }
                foreach (var s in f.Settlements)
                {
                    ArgumentOutOfRangeException.ThrowIfNegative(s.ActualMicros, nameof(flushes));
                    args.Add(s.Usage.RequestId); args.Add(s.AdmissionFlushed ? 1 : 0); args.Add(s.ActualMicros); args.Add(s.Usage.Tokens.Total);
                    UsageStreamFields.AddValuesTo(args, s.Usage);
                }
                foreach (var r in f.Releases)
                {
                    args.Add(r.RequestId); args.Add(r.AdmissionFlushed ? 1 : 0);
                }
            }
            reply = await _redis.EvalAsync(LeaseScripts.Flush, keys, args, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            RedisArgBuffer.Return(keys);
            RedisArgBuffer.Return(args);
        }
        var results = new LeaseFlushResult[flushes.Count];
        for (var g = 0; g < flushes.Count; g++)
        {
            var f = flushes[g];
            var items = reply.Items[g].Items;
            var alive = items[0].AsInt64() == 1;
            var ids = new string?[f.Settlements.Count];
            for (var i = 0; i < ids.Length; i++)
            {
                var s = f.Settlements[i];
                if (alive && items[i + 1].Type == RespType.BulkString)
                {
                    ids[i] = items[i + 1].AsString();
                    _outbox?.Written(ids[i]!, s.Usage, s.ActualMicros, f.Lease.BudgetKey);
                }
                else if (!alive)
                {
                    _outbox?.Lost(s.Usage, s.ActualMicros, f.Lease.BudgetKey);
                }
                // else -1: an earlier flush whose reply was lost (a timeout) wrote it already; nothing is written twice.
            }
            results[g] = new LeaseFlushResult(alive, ids);
        }
        return results;
    }

    private async Task<LeaseRemainder?> EndLeaseAsync(string leaseId, string keyId, string userId, string budgetKey, string mode, long handoverMs,
        CancellationToken cancellationToken)
    {
        var keyNames = _names.ForKey(userId, keyId);
        var userNames = _names.ForUser(userId);
        var shard = userNames.Shard;
        var inflightKey = _keys.LeaseInflight(shard, leaseId);
        // The in-flight requests are read first and passed in (every key a script touches is declared); if they changed
        // meanwhile (a flush landed in between) the script says so and they are read again.
        for (var attempt = 0; ; attempt++)
        {
            var inflight = (await _redis.ExecuteAsync("HKEYS", [inflightKey], cancellationToken).ConfigureAwait(false)).Items
                .Select(i => i.AsString()!).ToArray();
            var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
            var keys = new RedisArg[12 + inflight.Length];
            keys[0] = keyNames.RateCounters; keys[1] = userNames.RateCounters; keys[2] = keyNames.Lifetime; keys[3] = userNames.Balance;
            keys[4] = budgetKey; keys[5] = userNames.Leases; keys[6] = _keys.Lease(shard, leaseId); keys[7] = keyNames.Inflight; keys[8] = userNames.Inflight;
            keys[9] = inflightKey; keys[10] = userNames.Reservations; keys[11] = userNames.LeaseIds;
            var args = new RedisArg[6 + inflight.Length];
            args[0] = nowMs; args[1] = leaseId; args[2] = nowMs / MinuteMs; args[3] = nowMs / DayMs; args[4] = mode; args[5] = Math.Max(handoverMs, nowMs);
            for (var i = 0; i < inflight.Length; i++)
            {
                keys[12 + i] = userNames.ReservationStem + inflight[i];
                args[6 + i] = inflight[i];
            }
            var r = (await _redis.EvalAsync(LeaseScripts.Return, keys, args, cancellationToken).ConfigureAwait(false)).Items;
            var outcome = r[0].AsInt64();
            if (outcome == -3 && attempt < 10) continue;
            if (outcome == -3) throw new InvalidOperationException($"The in-flight requests of lease {leaseId} kept changing while it was being returned.");
            if (outcome != 1) return null;
            return new LeaseRemainder(
                long.Parse(r[1].AsString()!, CultureInfo.InvariantCulture),
                long.Parse(r[2].AsString()!, CultureInfo.InvariantCulture),
                long.Parse(r[3].AsString()!, CultureInfo.InvariantCulture));
        }
    }
}
