using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The Lua scripts behind <see cref="Enforcer"/>. Every key a script touches is declared in KEYS.
/// Numbers written back to Redis go through string.format('%d') because Lua's default number-to-string
/// conversion (%.14g) would turn large micro-dollar amounts into exponent notation.
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
    // Shared Lua prelude: clock-derived window indices and window helpers.
    private const string Prelude = """
        local now = tonumber(ARGV[1])
        local MIN, DAY = 60000, 86400000
        local min_idx = math.floor(now / MIN)
        local el = now - min_idx * MIN
        local day_idx = math.floor(now / DAY)
        local day_left = (day_idx + 1) * DAY - now
        local function fmt(n) return string.format('%d', n) end
        local function int(v) return tonumber(v) or 0 end
        -- All rate windows of one key or user live in one hash, read with one HMGET and written with one
        -- HSET. Minute windows are normalised to the current minute: {c = current, pr = previous};
        -- day windows to the current UTC day: {c = count}.
        local function load(h)
          local v = redis.call('HMGET', h, 'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc')
          local function m(i, c, pr)
            i, c, pr = int(i), int(c), int(pr)
            if i == min_idx then return {c = c, pr = pr} end
            if i == min_idx - 1 then return {c = 0, pr = c} end
            return {c = 0, pr = 0}
          end
          local function d(i, c)
            if int(i) == day_idx then return {c = int(c)} end
            return {c = 0}
          end
          return {rm = m(v[1], v[2], v[3]), tm = m(v[4], v[5], v[6]), rd = d(v[7], v[8]), td = d(v[9], v[10])}
        end
        local function store(h, s)
          local mi, di = fmt(min_idx), fmt(day_idx)
          redis.call('HSET', h, 'rmi', mi, 'rmc', fmt(s.rm.c), 'rmp', fmt(s.rm.pr), 'tmi', mi, 'tmc', fmt(s.tm.c), 'tmp', fmt(s.tm.pr),
            'rdi', di, 'rdc', fmt(s.rd.c), 'tdi', di, 'tdc', fmt(s.td.c))
          redis.call('PEXPIRE', h, fmt(2 * DAY))
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
    /// 27 price version, 28 retry-after ms for a concurrency rejection. Limits are -1 when not set.
    /// Returns {allowed (1/0, or -1 for a duplicate request id), reason, retry-after ms (-1 = retrying cannot help),
    /// request limit, remaining, reset ms, token limit, remaining, reset ms} (limit -1 = none configured).
    /// </summary>
    public static readonly LuaScript Admit = new(Prelude + """

        if redis.call('EXISTS', KEYS[9]) == 1 then return {-1} end
        local rid = ARGV[2]
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
            return math.max(1, (MIN - el) - math.floor((L - c - k) * MIN / pr))
          end
          -- wait for the next minute, where today's count becomes the weighted previous one
          local t = MIN - math.floor((L - k) * MIN / c)
          if t < 0 then t = 0 end
          return (MIN - el) + t
        end

        local windows = {}
        local function check_minute(code, st, limit, k)
          local w = {st = st, k = k, limit = tonumber(limit), m = true}
          windows[#windows + 1] = w
          if w.limit >= 0 and st.c + weighted(st.pr) + k > w.limit then fail(code, minute_retry(w.limit, st.c, st.pr, k)) end
          return w
        end
        local function check_day(code, st, limit, k)
          local w = {st = st, k = k, limit = tonumber(limit), m = false}
          windows[#windows + 1] = w
          if w.limit >= 0 and st.c + k > w.limit then
            if k > w.limit then fail(code, -1) else fail(code, day_left) end
          end
          return w
        end

        local ks, us = load(KEYS[1]), load(KEYS[2])
        local krm = check_minute(1, ks.rm, ARGV[10], 1)
        local krd = check_day(2, ks.rd, ARGV[11], 1)
        local urm = check_minute(3, us.rm, ARGV[15], 1)
        local urd = check_day(4, us.rd, ARGV[16], 1)
        local ktm = check_minute(5, ks.tm, ARGV[12], est)
        local ktd = check_day(6, ks.td, ARGV[13], est)
        local utm = check_minute(7, us.tm, ARGV[17], est)
        local utd = check_day(8, us.td, ARGV[18], est)

        -- Slots are scored by lease expiry: a slot whose pod died stops counting when its lease passes.
        local function check_slots(code, z, limit)
          redis.call('ZREMRANGEBYSCORE', z, '-inf', fmt(now))
          limit = tonumber(limit)
          if limit >= 0 and redis.call('ZCARD', z) >= limit then fail(code, tonumber(ARGV[28])) end
        end
        check_slots(9, KEYS[3], ARGV[14])
        check_slots(10, KEYS[4], ARGV[19])

        local life = redis.call('HMGET', KEYS[5], 'tokens', 'spend')
        local life_tokens, life_spend = int(life[1]), int(life[2])
        local token_limit, spend_limit = tonumber(ARGV[20]), tonumber(ARGV[21])
        if token_limit >= 0 and life_tokens + est > token_limit then fail(11, -1) end
        if spend_limit >= 0 and life_spend + reserved > spend_limit then fail(12, -1) end
        if int(redis.call('GET', KEYS[6])) < reserved then fail(13, -1) end
        local budget, period_end = tonumber(ARGV[22]), tonumber(ARGV[23])
        if budget >= 0 and int(redis.call('GET', KEYS[7])) + reserved > budget then
          if period_end > 0 then fail(14, period_end - now) else fail(14, -1) end
        end

        local allowed = reason == 0
        -- x-ratelimit-* numbers: the most restrictive configured window (least remaining).
        local function status(list)
          local bl, br, bz = -1, -1, -1
          for _, w in ipairs(list) do
            if w.limit >= 0 then
              local c = w.st.c
              if allowed then c = c + w.k end
              local used, reset = c, 0
              if w.m then
                used = c + weighted(w.st.pr)
                if c > 0 then reset = (MIN - el) + MIN elseif w.st.pr > 0 then reset = MIN - el end
              elseif c > 0 then reset = day_left end
              local rem = w.limit - used
              if rem < 0 then rem = 0 end
              if bl < 0 or rem < br then bl, br, bz = w.limit, rem, reset end
            end
          end
          return bl, br, bz
        end
        local rl, rr, rz = status({krm, krd, urm, urd})
        local tl, tr, tz = status({ktm, ktd, utm, utd})
        if not allowed then return {0, reason, retry, rl, rr, rz, tl, tr, tz} end

        for _, w in ipairs(windows) do w.st.c = w.st.c + w.k end
        -- Relative TTLs (not PEXPIREAT) so a skew between the proxy's clock and Redis' cannot delete live keys.
        store(KEYS[1], ks)
        store(KEYS[2], us)
        -- In-flight sets only need a TTL for hygiene (ZREM and the expiry sweep keep them small); a day past
        -- the newest lease outlives every realistic lease without a PTTL round trip.
        for z = 3, 4 do
          redis.call('ZADD', KEYS[z], fmt(lease), rid)
          redis.call('PEXPIRE', KEYS[z], fmt(lease - now + DAY))
        end
        redis.call('HSET', KEYS[5], 'tokens', fmt(life_tokens + est), 'spend', fmt(life_spend + reserved))
        redis.call('DECRBY', KEYS[6], fmt(reserved))
        redis.call('INCRBY', KEYS[7], fmt(reserved))
        if period_end > 0 then redis.call('PEXPIRE', KEYS[7], fmt(period_end - now + 7 * DAY)) end
        redis.call('ZADD', KEYS[8], fmt(lease), rid)
        redis.call('HSET', KEYS[9],
          'key_id', ARGV[3], 'key_version', ARGV[4], 'user_id', ARGV[5],
          'reserved', fmt(reserved), 'est_in', ARGV[8], 'est_out', ARGV[9],
          'model', ARGV[24], 'route', ARGV[25], 'upstream', ARGV[26], 'price_version', ARGV[27],
          'started_at_ms', fmt(now), 'expires_at_ms', fmt(lease), 'budget_key', KEYS[7],
          'min_idx', fmt(min_idx), 'day_idx', fmt(day_idx))
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
        if mode == 'expire' and int(v[7]) > now then return -1 end
        if v[6] ~= KEYS[9] then return redis.error_reply('ERR the reservation was held against another budget key') end
        local reserved, est = int(v[1]), int(v[2]) + int(v[3])
        local adm_min, adm_day = int(v[4]), int(v[5])
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
          redis.call('DECRBY', KEYS[8], fmt(delta))
          -- Period and lifetime counters are limits, not money: clamp at zero, and leave a budget period
          -- key that already expired alone rather than recreating it without a TTL.
          local spent = redis.call('GET', KEYS[9])
          if spent then
            local n = int(spent) + delta
            if n < 0 then n = 0 end
            redis.call('SET', KEYS[9], fmt(n), 'KEEPTTL')
          end
        end
        if delta ~= 0 or actual_tokens ~= est then
          local life = redis.call('HMGET', KEYS[7], 'tokens', 'spend')
          local t, s = int(life[1]) + actual_tokens - est, int(life[2]) + delta
          if t < 0 then t = 0 end
          if s < 0 then s = 0 end
          redis.call('HSET', KEYS[7], 'tokens', fmt(t), 'spend', fmt(s))
        end

        -- Token windows: take the estimate back out of the window that still holds it, add the actual
        -- tokens to the current one.
        if not (adm_min == min_idx and adm_day == day_idx and actual_tokens == est) then
          for h = 5, 6 do
            local st = load(KEYS[h])
            if adm_min == min_idx then st.tm.c = math.max(0, st.tm.c - est)
            elseif adm_min == min_idx - 1 then st.tm.pr = math.max(0, st.tm.pr - est) end
            st.tm.c = st.tm.c + actual_tokens
            if adm_day == day_idx then st.td.c = math.max(0, st.td.c - est) end
            st.td.c = st.td.c + actual_tokens
            store(KEYS[h], st)
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
        redis.call('HSET', KEYS[1], 'expires_at_ms', fmt(lease))
        -- Plain ZADD: a slot already swept as expired by another admission is taken again, since the
        -- request is evidently alive.
        for z = 2, 4 do redis.call('ZADD', KEYS[z], fmt(lease), ARGV[2]) end
        for z = 3, 4 do redis.call('PEXPIRE', KEYS[z], fmt(lease - now + DAY)) end
        return 1
        """);
}
