using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The Lua scripts behind <see cref="Enforcer"/>. Every key a script touches is declared in KEYS.
/// Numbers written back to Redis go through string.format('%d') because Lua's default number-to-string
/// conversion (%.14g) would turn large micro-dollar amounts into exponent notation; values the caller
/// sent (lease, reservation, ids) are written as their ARGV text unchanged.
/// </summary>
/// <remarks>
/// Windows. Per-minute limits use a sliding-window counter: the current fixed minute's count plus the
/// previous minute's count weighted by the part of it still inside the last 60 s (rounded up, so the
/// estimate never under-counts). It needs three hash fields per limit, costs O(1), and unlike a fixed
/// window cannot let 2× the limit through across a minute boundary; it is exact when traffic within the
/// previous minute was uniform and conservative otherwise. Per-day limits are fixed windows aligned to
/// UTC calendar days (reset at 00:00 UTC), which is what "requests per day" means to people and gives an
/// exact reset time for x-ratelimit-reset-*.
/// </remarks>
internal static class EnforcementScripts
{
    // Shared Lua prelude: clock-derived window indices and window helpers. Kept free of per-call tables:
    // helpers return plain values (Redis runs the script body on every call, so each table or closure
    // built here is built again per request).
    //
    // Expiry without a PEXPIRE per call: a rate hash only matters until the end of the UTC day after its
    // last write (its day windows reset at midnight, its minute windows after two minutes), so its TTL is
    // set to "end of tomorrow" only when a write finds the stored day index stale (the first write of a
    // key or user each day, or after it expired) — read from the HMGET the script does anyway. The
    // in-flight sets piggyback on that same daily refresh (see Admit).
    private const string Prelude = """
        local now = tonumber(ARGV[1])
        local MIN, DAY = 60000, 86400000
        local min_idx = math.floor(now / MIN)
        local el = now - min_idx * MIN
        local day_idx = math.floor(now / DAY)
        local day_left = (day_idx + 1) * DAY - now
        local fmt = string.format
        local max = math.max
        -- A minute window (index, current, previous) normalised to the current minute: current, previous.
        local function minute(i, c, p)
          i = tonumber(i) or 0
          if i == min_idx then return tonumber(c) or 0, tonumber(p) or 0 end
          if i == min_idx - 1 then return 0, tonumber(c) or 0 end
          return 0, 0
        end
        -- A day window (index, count) normalised to the current UTC day.
        local function day(i, c)
          if (tonumber(i) or 0) == day_idx then return tonumber(c) or 0 end
          return 0
        end
        local function weighted(pr) return math.ceil(pr * (MIN - el) / MIN) end
        """;

    /// <summary>
    /// KEYS: 1 key rate counters, 2 user rate counters, 3 key in-flight, 4 user in-flight, 5 key lifetime,
    /// 6 balance, 7 budget spent (current period), 8 reservations zset, 9 reservation hash.
    /// ARGV: 1 now ms, 2 request id, 3 key id, 4 key version, 5 user id, 6 lease expiry ms, 7 reserved micros,
    /// 8 estimated input tokens, 9 max output tokens, 10-14 key rpm rpd tpm tpd maxConcurrent,
    /// 15-19 user rpm rpd tpm tpd maxConcurrent, 20 key token limit, 21 key spend limit micros,
    /// 22 budget micros, 23 budget period end ms (0 = never resets), 24 model, 25 route, 26 upstream,
    /// 27 price version, 28 retry-after ms for a concurrency rejection. Limits are -1 when not set; a check
    /// whose limit is not set costs no Redis command (counters are still kept).
    /// Returns {allowed (1/0, or -1 for a duplicate request id), reason, retry-after ms (-1 = retrying cannot help),
    /// request limit, remaining, reset ms, token limit, remaining, reset ms} (limit -1 = none configured).
    /// </summary>
    /// <remarks>
    /// Commands for an admitted request: ZADD NX (which doubles as the duplicate-id check), 2 HMGET rate
    /// hashes, HMGET lifetime, GET balance (MGET balance + budget with a budget), [ZREMRANGEBYSCORE + ZCARD per concurrency limit],
    /// 2 HSET rate hashes, 2 ZADD in-flight, HSET lifetime, DECRBY balance, SET PX or INCRBY budget,
    /// HSET reservation; plus a PEXPIRE per rate hash and in-flight set once a day.
    /// </remarks>
    public static readonly LuaScript Admit = new(Prelude + """

        local rid = ARGV[2]
        -- The reservations zset member is written first and only if absent: that is the duplicate check
        -- (the member and the reservation hash are created and deleted together). A rejection removes it.
        if redis.call('ZADD', KEYS[8], 'NX', ARGV[6], rid) == 0 then return {-1} end
        local lease = tonumber(ARGV[6])
        local reserved = tonumber(ARGV[7])
        local est = tonumber(ARGV[8]) + tonumber(ARGV[9])

        local reason, retry = 0, 0
        -- The reason is the first failing check; retry-after is the longest wait among the failing checks
        -- that can pass by waiting, unless the first failure can never pass by waiting (-1).
        local function fail(code, r)
          if reason == 0 then reason, retry = code, r
          elseif retry >= 0 and r > retry then retry = r end
        end
        -- Smallest wait (ms) until a sliding minute window admits k more.
        local function minute_retry(L, c, pr, k)
          if k > L then return -1 end
          if c + k <= L then
            -- need ceil(pr * (MIN - el - t) / MIN) <= L - c - k
            return max(1, (MIN - el) - math.floor((L - c - k) * MIN / pr))
          end
          -- wait for the next minute, where today's count becomes the weighted previous one
          local t = MIN - math.floor((L - k) * MIN / c)
          if t < 0 then t = 0 end
          return (MIN - el) + t
        end
        local function check_minute(code, c, pr, L, k)
          if L >= 0 and c + weighted(pr) + k > L then fail(code, minute_retry(L, c, pr, k)) end
        end
        local function check_day(code, c, L, k)
          if L >= 0 and c + k > L then
            if k > L then fail(code, -1) else fail(code, day_left) end
          end
        end

        local kv = redis.call('HMGET', KEYS[1], 'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc')
        local uv = redis.call('HMGET', KEYS[2], 'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc')
        local krc, krp = minute(kv[1], kv[2], kv[3])
        local ktc, ktp = minute(kv[4], kv[5], kv[6])
        local krd, ktd = day(kv[7], kv[8]), day(kv[9], kv[10])
        local urc, urp = minute(uv[1], uv[2], uv[3])
        local utc, utp = minute(uv[4], uv[5], uv[6])
        local urd, utd = day(uv[7], uv[8]), day(uv[9], uv[10])
        local l_krm, l_krd, l_ktm, l_ktd = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
        local l_urm, l_urd, l_utm, l_utd = tonumber(ARGV[15]), tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])
        check_minute(1, krc, krp, l_krm, 1)
        check_day(2, krd, l_krd, 1)
        check_minute(3, urc, urp, l_urm, 1)
        check_day(4, urd, l_urd, 1)
        check_minute(5, ktc, ktp, l_ktm, est)
        check_day(6, ktd, l_ktd, est)
        check_minute(7, utc, utp, l_utm, est)
        check_day(8, utd, l_utd, est)

        -- Slots are scored by lease expiry: a slot whose pod died stops counting when its lease passes.
        -- Without a limit nothing reads the set, so it is not swept here (settlement, release and the
        -- reservation expiry remove every member).
        local l_kc, l_uc = tonumber(ARGV[14]), tonumber(ARGV[19])
        if l_kc >= 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
          if redis.call('ZCARD', KEYS[3]) >= l_kc then fail(9, tonumber(ARGV[28])) end
        end
        if l_uc >= 0 then
          redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
          if redis.call('ZCARD', KEYS[4]) >= l_uc then fail(10, tonumber(ARGV[28])) end
        end

        local life = redis.call('HMGET', KEYS[5], 'tokens', 'spend')
        local life_tokens, life_spend = tonumber(life[1]) or 0, tonumber(life[2]) or 0
        local token_limit, spend_limit = tonumber(ARGV[20]), tonumber(ARGV[21])
        if token_limit >= 0 and life_tokens + est > token_limit then fail(11, -1) end
        if spend_limit >= 0 and life_spend + reserved > spend_limit then fail(12, -1) end
        local budget, period_end = tonumber(ARGV[22]), tonumber(ARGV[23])
        -- Balance and budget in one MGET when there is a budget to check.
        local balance, spent
        if budget >= 0 then
          local m = redis.call('MGET', KEYS[6], KEYS[7])
          balance, spent = tonumber(m[1]) or 0, tonumber(m[2]) or 0
        else
          balance = tonumber(redis.call('GET', KEYS[6])) or 0
        end
        if balance < reserved then fail(13, -1) end
        if spent then
          if spent + reserved > budget then
            if period_end > 0 then fail(14, period_end - now) else fail(14, -1) end
          end
        end

        local allowed = reason == 0
        -- x-ratelimit-* numbers: the most restrictive configured window (least remaining).
        local function win(bl, br, bz, L, c, pr, k, m)
          if L < 0 then return bl, br, bz end
          if allowed then c = c + k end
          local used, reset = c, 0
          if m then
            used = c + weighted(pr)
            if c > 0 then reset = (MIN - el) + MIN elseif pr > 0 then reset = MIN - el end
          elseif c > 0 then reset = day_left end
          local rem = L - used
          if rem < 0 then rem = 0 end
          if bl < 0 or rem < br then return L, rem, reset end
          return bl, br, bz
        end
        local rl, rr, rz = win(-1, -1, -1, l_krm, krc, krp, 1, true)
        rl, rr, rz = win(rl, rr, rz, l_krd, krd, 0, 1, false)
        rl, rr, rz = win(rl, rr, rz, l_urm, urc, urp, 1, true)
        rl, rr, rz = win(rl, rr, rz, l_urd, urd, 0, 1, false)
        local tl, tr, tz = win(-1, -1, -1, l_ktm, ktc, ktp, est, true)
        tl, tr, tz = win(tl, tr, tz, l_ktd, ktd, 0, est, false)
        tl, tr, tz = win(tl, tr, tz, l_utm, utc, utp, est, true)
        tl, tr, tz = win(tl, tr, tz, l_utd, utd, 0, est, false)
        if not allowed then
          redis.call('ZREM', KEYS[8], rid)
          return {0, reason, retry, rl, rr, rz, tl, tr, tz}
        end

        -- When every stored index is already the current minute/day (the usual case), only the four counts
        -- change; otherwise the whole normalised state is written.
        local mi, di = fmt('%d', min_idx), fmt('%d', day_idx)
        local function store(h, v, rc, rp, tc, tp, rd, td)
          if tonumber(v[1]) == min_idx and tonumber(v[4]) == min_idx and tonumber(v[7]) == day_idx and tonumber(v[9]) == day_idx then
            redis.call('HSET', h, 'rmc', fmt('%d', rc + 1), 'tmc', fmt('%d', tc + est), 'rdc', fmt('%d', rd + 1), 'tdc', fmt('%d', td + est))
          else
            redis.call('HSET', h, 'rmi', mi, 'rmc', fmt('%d', rc + 1), 'rmp', fmt('%d', rp), 'tmi', mi, 'tmc', fmt('%d', tc + est), 'tmp', fmt('%d', tp),
              'rdi', di, 'rdc', fmt('%d', rd + 1), 'tdi', di, 'tdc', fmt('%d', td + est))
          end
        end
        store(KEYS[1], kv, krc, krp, ktc, ktp, krd, ktd)
        store(KEYS[2], uv, urc, urp, utc, utp, urd, utd)
        redis.call('ZADD', KEYS[3], ARGV[6], rid)
        redis.call('ZADD', KEYS[4], ARGV[6], rid)
        -- TTLs are relative (not PEXPIREAT) so a skew between the proxy's clock and Redis' cannot delete live
        -- keys, and refreshed on the first write of a UTC day. An in-flight set only needs a TTL for hygiene
        -- (settlement and the expiry sweep remove its members); "a lease plus two days" from the daily refresh
        -- outlives every member added that day unless a lease is over a day long, which refreshes it itself.
        local long_lease = lease - now > DAY
        if (tonumber(kv[7]) or -1) ~= day_idx then redis.call('PEXPIRE', KEYS[1], fmt('%d', day_left + DAY)) end
        if (tonumber(uv[7]) or -1) ~= day_idx then redis.call('PEXPIRE', KEYS[2], fmt('%d', day_left + DAY)) end
        if long_lease or (tonumber(kv[7]) or -1) ~= day_idx then redis.call('PEXPIRE', KEYS[3], fmt('%d', lease - now + 2 * DAY)) end
        if long_lease or (tonumber(uv[7]) or -1) ~= day_idx then redis.call('PEXPIRE', KEYS[4], fmt('%d', lease - now + 2 * DAY)) end
        redis.call('HSET', KEYS[5], 'tokens', fmt('%d', life_tokens + est), 'spend', fmt('%d', life_spend + reserved))
        redis.call('DECRBY', KEYS[6], ARGV[7])
        if spent and period_end > 0 then
          -- One SET with the TTL instead of INCRBY + PEXPIRE: the value was read above in this same script.
          redis.call('SET', KEYS[7], fmt('%d', spent + reserved), 'PX', fmt('%d', period_end - now + 7 * DAY))
        else
          redis.call('INCRBY', KEYS[7], ARGV[7])
          if period_end > 0 then redis.call('PEXPIRE', KEYS[7], fmt('%d', period_end - now + 7 * DAY)) end
        end
        redis.call('HSET', KEYS[9],
          'key_id', ARGV[3], 'key_version', ARGV[4], 'user_id', ARGV[5],
          'reserved', ARGV[7], 'est_in', ARGV[8], 'est_out', ARGV[9],
          'model', ARGV[24], 'route', ARGV[25], 'upstream', ARGV[26], 'price_version', ARGV[27],
          'started_at_ms', ARGV[1], 'expires_at_ms', ARGV[6], 'budget_key', KEYS[7],
          'min_idx', mi, 'day_idx', di)
        return {1, 0, 0, rl, rr, rz, tl, tr, tz}
        """);

    /// <summary>
    /// Ends a reservation: settle (actual cost), expire (charge the reservation) or release (charge nothing).
    /// KEYS: 1 reservation hash, 2 reservations zset, 3 key in-flight, 4 user in-flight, 5 key rate counters,
    /// 6 user rate counters, 7 key lifetime, 8 balance, 9 budget spent (the reservation's period), 10 usage stream.
    /// ARGV: 1 now ms, 2 request id, 3 mode (settle|expire|release), 4 actual micros, 5 actual tokens,
    /// 6.. usage event field/value pairs (settle and expire).
    /// Returns 1 when done, 0 when the reservation was already ended, -1 (expire only) when its lease was renewed.
    /// </summary>
    public static readonly LuaScript Finish = new(Prelude + """

        local rid, mode = ARGV[2], ARGV[3]
        local v = redis.call('HMGET', KEYS[1], 'reserved', 'est_in', 'est_out', 'min_idx', 'day_idx', 'budget_key', 'expires_at_ms')
        if not v[1] then return 0 end
        if mode == 'expire' and (tonumber(v[7]) or 0) > now then return -1 end
        if v[6] ~= KEYS[9] then return redis.error_reply('ERR the reservation was held against another budget key') end
        local reserved, est = tonumber(v[1]) or 0, (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
        local adm_min, adm_day = tonumber(v[4]) or 0, tonumber(v[5]) or 0
        local actual, actual_tokens = 0, 0
        if mode == 'settle' then actual, actual_tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
        elseif mode == 'expire' then actual, actual_tokens = reserved, est end

        redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[2], rid)
        redis.call('ZREM', KEYS[3], rid)
        redis.call('ZREM', KEYS[4], rid)

        local delta = actual - reserved
        if delta ~= 0 then
          -- The balance is real money: an actual cost above the reservation may take it below zero (a debt
          -- the next admission sees); it is never clamped, so it stays equal to the ledger.
          redis.call('DECRBY', KEYS[8], fmt('%d', delta))
          -- Period and lifetime counters are limits, not money: clamp at zero, and leave a budget period
          -- key that already expired alone rather than recreating it without a TTL.
          local spent = redis.call('GET', KEYS[9])
          if spent then
            redis.call('SET', KEYS[9], fmt('%d', max(0, (tonumber(spent) or 0) + delta)), 'KEEPTTL')
          end
        end
        if delta ~= 0 or actual_tokens ~= est then
          local life = redis.call('HMGET', KEYS[7], 'tokens', 'spend')
          redis.call('HSET', KEYS[7], 'tokens', fmt('%d', max(0, (tonumber(life[1]) or 0) + actual_tokens - est)),
            'spend', fmt('%d', max(0, (tonumber(life[2]) or 0) + delta)))
        end

        -- Token windows: take the estimate back out of the window that still holds it, add the actual
        -- tokens to the current one. Only the token fields are read and written.
        if not (adm_min == min_idx and adm_day == day_idx and actual_tokens == est) then
          local mi, di = fmt('%d', min_idx), fmt('%d', day_idx)
          for h = 5, 6 do
            local w = redis.call('HMGET', KEYS[h], 'tmi', 'tmc', 'tmp', 'tdi', 'tdc')
            local c, p = minute(w[1], w[2], w[3])
            if adm_min == min_idx then c = max(0, c - est)
            elseif adm_min == min_idx - 1 then p = max(0, p - est) end
            local d = day(w[4], w[5])
            if adm_day == day_idx then d = max(0, d - est) end
            if tonumber(w[1]) == min_idx and tonumber(w[4]) == day_idx and adm_min ~= min_idx - 1 then
              -- Indices current and the previous minute untouched: only the two counts change.
              redis.call('HSET', KEYS[h], 'tmc', fmt('%d', c + actual_tokens), 'tdc', fmt('%d', d + actual_tokens))
            else
              redis.call('HSET', KEYS[h], 'tmi', mi, 'tmc', fmt('%d', c + actual_tokens), 'tmp', fmt('%d', p),
                'tdi', di, 'tdc', fmt('%d', d + actual_tokens))
            end
            if (tonumber(w[4]) or -1) ~= day_idx then redis.call('PEXPIRE', KEYS[h], fmt('%d', day_left + DAY)) end
          end
        end

        if mode ~= 'release' then
          -- Never trimmed here: an entry the ledger writer has not acknowledged must not be dropped.
          redis.call('XADD', KEYS[10], '*', unpack(ARGV, 6))
        end
        return 1
        """);

    /// <summary>
    /// Moves a live reservation's lease (long streams). KEYS: 1 reservation hash, 2 reservations zset,
    /// 3 key in-flight, 4 user in-flight. ARGV: 1 now ms, 2 request id, 3 new lease expiry ms.
    /// Returns 1, or 0 when the reservation already ended.
    /// </summary>
    public static readonly LuaScript Extend = new(Prelude + """

        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local lease = tonumber(ARGV[3])
        redis.call('HSET', KEYS[1], 'expires_at_ms', ARGV[3])
        -- Plain ZADD: a slot already swept as expired by another admission is taken again, since the
        -- request is evidently alive.
        for z = 2, 4 do redis.call('ZADD', KEYS[z], ARGV[3], ARGV[2]) end
        -- The same TTL rule as admission's daily refresh (a lease plus two days).
        for z = 3, 4 do redis.call('PEXPIRE', KEYS[z], fmt('%d', lease - now + 2 * DAY)) end
        return 1
        """);
}
