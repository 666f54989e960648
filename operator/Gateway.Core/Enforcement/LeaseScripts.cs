using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The Lua scripts behind quota leases (Hot path v2 in DESIGN; <see cref="Enforcer.GrantLeaseAsync"/>). A lease takes,
/// in one call, a slice of a (user, key) pair's money (deducted from the balance and counted against the period budget
/// and the key's spend limit when granted) and of the current windows' request and token allowances (counted in the
/// windows when granted), so a replica can admit requests against it without a Redis call; returning it gives back
/// what was not used. Window and money arithmetic follow <see cref="EnforcementScripts"/> (same hash fields, same
/// sliding-minute estimate, same clamping); these scripts run once per lease, not per request, so they favour plainness
/// over the per-call economies of Admit and Finish.
/// </summary>
internal static class LeaseScripts
{
    /// <summary>Values in Grant's ARGV[9], in order.</summary>
    public const int GrantNumbers = 21;

    // Reads one rate hash normalised to now: request and token counts of this minute, the previous one, today, and
    // whether the stored day is today (else its TTL is refreshed when written, as Admit does).
    private const string WindowsLua = """
        local F = {'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc'}
        local function windows(h)
          local v = call('HMGET', h, unpack(F))
          local rc, rp, tc, tp, rd, td = 0, 0, 0, 0, 0, 0
          local rmi, tmi, rdi, tdi = tonumber(v[1]) or 0, tonumber(v[4]) or 0, tonumber(v[7]) or 0, tonumber(v[9]) or 0
          if rmi == min_idx then rc, rp = tonumber(v[2]) or 0, tonumber(v[3]) or 0
          elseif rmi == min_idx - 1 then rp = tonumber(v[2]) or 0 end
          if tmi == min_idx then tc, tp = tonumber(v[5]) or 0, tonumber(v[6]) or 0
          elseif tmi == min_idx - 1 then tp = tonumber(v[5]) or 0 end
          if rdi == day_idx then rd = tonumber(v[8]) or 0 end
          if tdi == day_idx then td = tonumber(v[10]) or 0 end
          return rc, rp, tc, tp, rd, td, rdi == day_idx, v[1] ~= false or v[7] ~= false
        end
        local function write(h, rc, rp, tc, tp, rd, td, fresh)
          call('HSET', h, 'rmi', mi, 'rmc', fmt('%d', rc), 'rmp', fmt('%d', rp), 'tmi', mi, 'tmc', fmt('%d', tc),
            'tmp', fmt('%d', tp), 'rdi', di, 'rdc', fmt('%d', rd), 'tdi', di, 'tdc', fmt('%d', td))
          if not fresh then call('PEXPIRE', h, fmt('%d', (day_idx + 1) * DAY - now + DAY)) end
        end
        """;

    /// <summary>
    /// KEYS: 1 key rate counters, 2 user rate counters, 3 key lifetime, 4 balance, 5 budget spent (current period),
    /// 6 leases zset, 7 lease hash, 8 key in-flight zset, 9 user in-flight zset, 10 the user's lease ids set.
    /// ARGV: 1 now ms, 2 lease id, 3 now's minute index, 4 now's UTC day index, 5 the budget key's TTL ms (0 when the
    /// budget never resets), 6 owner (replica id), 7 key id, 8 user id, 9 little-endian int64s (<see cref="GrantNumbers"/>):
    /// now, expiry, money, requests, tokens, key rpm rpd tpm tpd, user rpm rpd tpm tpd, key token limit, key spend limit
    /// micros, budget micros, budget period end ms, headroom factor, concurrency slots, key maxConcurrent, user
    /// maxConcurrent. Limits are -1 when not set. Slots are held as members "lease:&lt;id&gt;:&lt;n&gt;" of the in-flight
    /// zsets, scored by the lease's expiry (so exact admissions count them, and they stop counting if it is never
    /// returned), only where a concurrency limit applies.
    /// A grant needs, in every limited dimension, at least factor × the slice still free (room for the other replicas'
    /// leases and for exact admissions); otherwise nothing changes and the caller admits this pair exactly.
    /// Returns {1, then the windows' counts after the slices were counted, normalised to now, in the order of Admit's
    /// (<see cref="WindowCounts"/>)} granted, {0, reason} refused (the first dimension short, as <see cref="RejectionReason"/>), {-1} the
    /// lease id exists, {-2} the user has no balance key (the projection was lost and is not rebuilt yet).
    /// </summary>
    public static readonly LuaScript Grant = new("""
        local call, tonumber, fmt, ceil = redis.call, tonumber, string.format, math.ceil
        local MIN, DAY = 60000, 86400000
        local now, expiry, money, requests, tokens, l_krm, l_krd, l_ktm, l_ktd, l_urm, l_urd, l_utm, l_utd,
          token_limit, spend_limit, budget, period_end, factor, slots, l_kc, l_uc = struct.unpack('<GRANT_NUMBERS', ARGV[9])
        local mi, di = ARGV[3], ARGV[4]
        local min_idx, day_idx = math.floor(now / MIN), math.floor(now / DAY)
        local rest = MIN - (now - min_idx * MIN)
        local bal_raw = call('GET', KEYS[4])
        if not bal_raw then return {-2} end
        if call('EXISTS', KEYS[7]) == 1 then return {-1} end
        WINDOWS_LUA
        local krc, krp, ktc, ktp, krd, ktd, kfresh = windows(KEYS[1])
        local urc, urp, utc, utp, urd, utd, ufresh = windows(KEYS[2])
        local life = call('HMGET', KEYS[3], 'tokens', 'spend')
        local life_tokens, life_spend = tonumber(life[1]) or 0, tonumber(life[2]) or 0
        local balance = tonumber(bal_raw) or 0
        local spent = tonumber(call('GET', KEYS[5])) or 0

        local short = 0
        local function need(code, limit, used, slice)
          if short == 0 and limit >= 0 and limit - used < factor * slice then short = code end
        end
        need(1, l_krm, krc + ceil(krp * rest / MIN), requests)
        need(2, l_krd, krd, requests)
        need(3, l_urm, urc + ceil(urp * rest / MIN), requests)
        need(4, l_urd, urd, requests)
        need(5, l_ktm, ktc + ceil(ktp * rest / MIN), tokens)
        need(6, l_ktd, ktd, tokens)
        need(7, l_utm, utc + ceil(utp * rest / MIN), tokens)
        need(8, l_utd, utd, tokens)
        need(11, token_limit, life_tokens, tokens)
        need(12, spend_limit, life_spend, money)
        need(13, balance, 0, money)
        if budget >= 0 then need(14, budget, spent, money) end
        -- Concurrency: expired slots (a killed replica's) are swept first, as Admit does.
        if short == 0 and l_kc >= 0 then
          call('ZREMRANGEBYSCORE', KEYS[8], '-inf', ARGV[1])
          need(9, l_kc, call('ZCARD', KEYS[8]), slots)
        end
        if short == 0 and l_uc >= 0 then
          call('ZREMRANGEBYSCORE', KEYS[9], '-inf', ARGV[1])
          need(10, l_uc, call('ZCARD', KEYS[9]), slots)
        end
        if short ~= 0 then return {0, short} end

        write(KEYS[1], krc + requests, krp, ktc + tokens, ktp, krd + requests, ktd + tokens, kfresh)
        write(KEYS[2], urc + requests, urp, utc + tokens, utp, urd + requests, utd + tokens, ufresh)
        call('HSET', KEYS[3], 'tokens', fmt('%d', life_tokens + tokens), 'spend', fmt('%d', life_spend + money))
        call('DECRBY', KEYS[4], fmt('%d', money))
        if period_end > 0 then
          call('SET', KEYS[5], fmt('%d', spent + money), 'PX', ARGV[5])
        else
          call('INCRBY', KEYS[5], fmt('%d', money))
        end
        call('HSET', KEYS[7], 'user_id', ARGV[8], 'key_id', ARGV[7], 'owner', ARGV[6],
          'money', fmt('%d', money), 'requests', fmt('%d', requests), 'tokens', fmt('%d', tokens),
          'used_money', '0', 'used_tokens', '0', 'used_requests', '0',
          'min_idx', mi, 'day_idx', di, 'budget_key', KEYS[5], 'granted_at_ms', ARGV[1], 'expires_at_ms', fmt('%d', expiry),
          'slots', fmt('%d', (l_kc >= 0 or l_uc >= 0) and slots or 0))
        call('ZADD', KEYS[6], fmt('%d', expiry), ARGV[2])
        call('SADD', KEYS[10], ARGV[2])
        if slots > 0 and (l_kc >= 0 or l_uc >= 0) then
          local z, e = {}, fmt('%d', expiry)
          for i = 1, slots do z[2 * i - 1] = e; z[2 * i] = 'lease:' .. ARGV[2] .. ':' .. i end
          call('ZADD', KEYS[8], unpack(z))
          call('ZADD', KEYS[9], unpack(z))
        end
        -- The windows as now counted (slices included), in Admit's order, for the leased requests' x-ratelimit-* headers.
        return {1, krc + requests, krp, krd + requests, urc + requests, urp, urd + requests,
          ktc + tokens, ktp, ktd + tokens, utc + tokens, utp, utd + tokens}
        """.Replace("GRANT_NUMBERS", string.Concat(Enumerable.Repeat("i8", GrantNumbers)), StringComparison.Ordinal)
        .Replace("WINDOWS_LUA", WindowsLua, StringComparison.Ordinal));

    /// <summary>
    /// Ends a lease and gives back what it did not use: money (granted − used, negative when requests cost more than
    /// they reserved: then the balance goes down further, as settlement does) to the balance, the budget and the key's
    /// lifetime spend; unused requests and tokens to the windows the grant was counted in, where they still count.
    /// Requests still in flight under the lease are handed over: each becomes an ordinary reservation (hash and
    /// reservations zset entry, counted as used by the lease), settled by its request or expired by the sweeper as in
    /// exact mode.
    /// KEYS: 1–9 as <see cref="Grant"/>, 10 the lease's in-flight hash, 11 reservations zset, 12 the user's lease ids
    /// set, 13.. the reservation hash of each in-flight request, in the order of ARGV 7... A handed-over request takes one concurrency slot of its own
    /// (as an exact admission does); the lease's slots are freed.
    /// ARGV: 1 now ms, 2 lease id, 3 now's minute index, 4 now's UTC day index, 5 mode (return: by its owner; expire: the
    /// sweeper, only once the lease has expired), 6 the handed-over reservations' expiry ms, 7.. the in-flight request ids
    /// (as the caller read them; any other set returns -3 and changes nothing).
    /// Returns {1, money, requests, tokens given back}, {0} when the lease is gone (already returned or reclaimed, or
    /// lost with the projection), {-1} (expire) when it has not expired, {-3} when the in-flight requests differ from
    /// those passed (read them again).
    /// </summary>
    public static readonly LuaScript Return = new("""
        local call, tonumber, fmt, max, find, sub = redis.call, tonumber, string.format, math.max, string.find, string.sub
        local MIN, DAY = 60000, 86400000
        local now = tonumber(ARGV[1])
        local mi, di = ARGV[3], ARGV[4]
        local min_idx, day_idx = math.floor(now / MIN), math.floor(now / DAY)
        local v = call('HMGET', KEYS[7], 'money', 'requests', 'tokens', 'used_money', 'used_requests', 'used_tokens',
          'min_idx', 'day_idx', 'budget_key', 'expires_at_ms', 'key_id', 'user_id', 'slots')
        if not v[1] then return {0} end
        if ARGV[5] == 'expire' and (tonumber(v[10]) or 0) > now then return {-1} end
        if v[9] ~= KEYS[5] then return redis.error_reply('ERR the lease was granted against another budget key') end
        local n = #KEYS - 12
        if call('HLEN', KEYS[10]) ~= n then return {-3} end
        local records = n > 0 and call('HMGET', KEYS[10], unpack(ARGV, 7, 6 + n)) or {}
        for i = 1, n do if not records[i] then return {-3} end end

        local used_m, used_q, used_t = tonumber(v[4]) or 0, tonumber(v[5]) or 0, tonumber(v[6]) or 0
        local have_balance = call('GET', KEYS[4])
        for i = 1, n do
          -- "reserved|est_in|est_out|key_version|started_at_ms|route|upstream|price_version|model" (model last: free text).
          local rec, f, pos = records[i], {}, 1
          for j = 1, 8 do
            local s = find(rec, '|', pos, true)
            f[j] = sub(rec, pos, s - 1)
            pos = s + 1
          end
          if have_balance then
            call('HSET', KEYS[12 + i], 'key_id', v[11], 'key_version', f[4], 'user_id', v[12], 'reserved', f[1], 'est_in', f[2],
              'est_out', f[3], 'model', sub(rec, pos), 'route', f[6], 'upstream', f[7], 'price_version', f[8], 'started_at_ms', f[5],
              'expires_at_ms', ARGV[6], 'budget_key', KEYS[5], 'min_idx', v[7], 'day_idx', v[8])
            call('ZADD', KEYS[11], ARGV[6], ARGV[6 + i])
            if (tonumber(v[13]) or 0) > 0 then
              call('ZADD', KEYS[8], ARGV[6], ARGV[6 + i])
              call('ZADD', KEYS[9], ARGV[6], ARGV[6 + i])
            end
          end
          used_m, used_q, used_t = used_m + f[1], used_q + 1, used_t + f[2] + f[3]
        end
        local m = (tonumber(v[1]) or 0) - used_m
        local q = (tonumber(v[2]) or 0) - used_q
        local t = (tonumber(v[3]) or 0) - used_t
        local lmin, lday = tonumber(v[7]) or 0, tonumber(v[8]) or 0
        call('DEL', KEYS[7], KEYS[10])
        call('ZREM', KEYS[6], ARGV[2])
        call('SREM', KEYS[12], ARGV[2])
        local slots = tonumber(v[13]) or 0
        if slots > 0 then
          local z = {}
          for i = 1, slots do z[i] = 'lease:' .. ARGV[2] .. ':' .. i end
          call('ZREM', KEYS[8], unpack(z))
          call('ZREM', KEYS[9], unpack(z))
        end
        -- Without a balance key Redis lost the projection since the grant: the operator rebuilds balances, lifetimes
        -- and budgets from PostgreSQL, so nothing here may be written back (it would be counted twice).
        if not have_balance then return {1, '0', '0', '0'} end

        WINDOWS_LUA
        for h = 1, 2 do
          local rc, rp, tc, tp, rd, td, fresh, exists = windows(KEYS[h])
          if exists then
            if lmin == min_idx then rc, tc = max(0, rc - q), max(0, tc - t)
            elseif lmin == min_idx - 1 then rp, tp = max(0, rp - q), max(0, tp - t) end
            if lday == day_idx then rd, td = max(0, rd - q), max(0, td - t) end
            write(KEYS[h], rc, rp, tc, tp, rd, td, fresh)
          end
        end
        if m ~= 0 then
          call('INCRBY', KEYS[4], fmt('%d', m))
          local spent = call('GET', KEYS[5])
          if spent then call('SET', KEYS[5], fmt('%d', max(0, (tonumber(spent) or 0) - m)), 'KEEPTTL') end
        end
        if m ~= 0 or t ~= 0 then
          local life = call('HMGET', KEYS[3], 'tokens', 'spend')
          call('HSET', KEYS[3], 'tokens', fmt('%d', max(0, (tonumber(life[1]) or 0) - t)),
            'spend', fmt('%d', max(0, (tonumber(life[2]) or 0) - m)))
        end
        return {1, fmt('%d', m), fmt('%d', q), fmt('%d', t)}
        """.Replace("WINDOWS_LUA", WindowsLua, StringComparison.Ordinal));

    /// <summary>
    /// One flush of a replica's leased traffic, for any number of leases: requests admitted (their in-flight records),
    /// settled (their usage events, appended to the stream with the lease id) and released (counted as requests, nothing
    /// charged). What the settled and released requests used is added to each lease's used_* fields in one step.
    /// KEYS: 1 usage stream, then per lease g: 2g the lease hash, 2g+1 its in-flight hash.
    /// ARGV: 1 number of leases; then per lease: lease id, admitted count, settled count, released count; then per admitted
    /// request: request id, in-flight record (<see cref="Return"/>); per settled request: request id, 1 when its admission
    /// was flushed earlier (else 0), its cost in micros, its tokens, the usage event's values in
    /// <see cref="UsageStreamFields.Names"/> order; per released request: request id, the same flag.
    /// Returns per lease {1 or 0 (the lease is gone: nothing was written for it), then per settled request its stream
    /// entry id (0 when the lease is gone, -1 when the request was no longer in flight: settled by an earlier flush)}.
    /// Idempotent per request: a settlement or release whose admission was flushed earlier is applied (event appended,
    /// used_* counted) only if its in-flight record was still there, so a flush sent again after a failed or timed-out
    /// call writes nothing twice.
    /// </summary>
    public static readonly LuaScript Flush = new("""
        local call, unpack = redis.call, unpack
        local names = {FIELD_NAMES}
        local F = #names
        local out = {}
        local p = 2
        for g = 1, tonumber(ARGV[1]) do
          local lk, ik = KEYS[2 * g], KEYS[2 * g + 1]
          local lease_id, na, ns, nr = ARGV[p], tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
          p = p + 4
          local alive = call('EXISTS', lk) == 1
          local res = {alive and 1 or 0}
          if alive and na > 0 then
            call('HSET', ik, unpack(ARGV, p, p + 2 * na - 1))
          end
          p = p + 2 * na
          local sm, st, n = 0, 0, 0
          for i = 1, ns do
            if not alive then
              res[#res + 1] = 0
            elseif ARGV[p + 1] == '1' and call('HDEL', ik, ARGV[p]) == 0 then
              res[#res + 1] = -1
            else
              local x = {}
              for f = 1, F do x[2 * f - 1] = names[f]; x[2 * f] = ARGV[p + 3 + f] end
              x[2 * F + 1] = 'lease_id'; x[2 * F + 2] = lease_id
              res[#res + 1] = call('XADD', KEYS[1], '*', unpack(x))
              sm = sm + tonumber(ARGV[p + 2]); st = st + tonumber(ARGV[p + 3]); n = n + 1
            end
            p = p + 4 + F
          end
          for i = 1, nr do
            if alive and (ARGV[p + 1] ~= '1' or call('HDEL', ik, ARGV[p]) == 1) then n = n + 1 end
            p = p + 2
          end
          if n > 0 then
            call('HINCRBY', lk, 'used_money', sm)
            call('HINCRBY', lk, 'used_tokens', st)
            call('HINCRBY', lk, 'used_requests', n)
          end
          out[g] = res
        end
        return out
        """.Replace("FIELD_NAMES", string.Join(", ", UsageStreamFields.Names.Select(n => $"'{n}'")), StringComparison.Ordinal));
}
