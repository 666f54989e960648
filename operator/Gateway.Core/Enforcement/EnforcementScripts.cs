using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The Lua scripts behind <see cref="Enforcer"/>. Every key a script touches is declared in KEYS.
/// Numbers written back to Redis go through string.format('%d') because Lua's default number-to-string
/// conversion (%.14g) would turn large micro-dollar amounts into exponent notation (and a Lua number passed
/// to redis.call is formatted with %.17g, slower still); values the caller sent (lease, reservation, ids,
/// window indices, TTLs) are written as their ARGV text unchanged.
/// </summary>
/// <remarks>
/// Windows. Per-minute limits use a sliding-window counter: the current fixed minute's count plus the
/// previous minute's count weighted by the part of it still inside the last 60 s (rounded up, so the
/// estimate never under-counts). It needs three hash fields per limit, costs O(1), and unlike a fixed
/// window cannot let 2× the limit through across a minute boundary; it is exact when traffic within the
/// previous minute was uniform and conservative otherwise. Per-day limits are fixed windows aligned to
/// UTC calendar days (reset at 00:00 UTC), which is what "requests per day" means to people and gives an
/// exact reset time for x-ratelimit-reset-*.
/// <para>
/// Cost. Redis runs the whole script body on every call in Lua 5.1 without a JIT, so the scripts are
/// written for the interpreter: every tonumber (two strtod), string.format, closure, table and argument is
/// paid per request. Hence: the caller sends the current minute and day indices as text, and a stored index
/// is compared with it as a string (Lua strings are interned, so that is one pointer comparison) — it is
/// parsed only when it is not current; numbers Admit only compares and adds come packed in one argument
/// (struct.unpack, no strtod); other numeric text is coerced with '+ 0' (one strtod) unless the operator
/// writes it too (balance, budget, lifetime keep tonumber's "not a number is 0"); values the caller can
/// compute (the estimate's total, the budget key's TTL, settlement's deltas) come as ARGV; the rate-limit
/// headers are computed by the caller from the counts Admit returns (<see cref="RateLimitHeaders"/>); the
/// usage stream's field names are constants here instead of ARGV.
/// </para>
/// </remarks>
internal static class EnforcementScripts
{
    /// <summary>
    /// KEYS: 1 key rate counters, 2 user rate counters, 3 key in-flight, 4 user in-flight, 5 key lifetime,
    /// 6 balance, 7 budget spent (current period), 8 reservations zset, 9 reservation hash.
    /// ARGV (text): 1 now ms, 2 request id, 3 key id, 4 key version, 5 user id, 6 lease expiry ms, 7 reserved
    /// micros, 8 estimated input tokens, 9 max output tokens, 10 model, 11 route, 12 upstream, 13 price version,
    /// 14 now's minute index (now / 60000), 15 now's UTC day index (now / 86400000), 16 the budget key's TTL ms
    /// (period end − now + 7 days; unused without a period end); 17 the numbers the script only compares and
    /// adds, as little-endian int64s (<see cref="AdmitNumbers"/>): now, lease expiry, reserved, estimated tokens
    /// (8 + 9), key rpm rpd tpm tpd maxConcurrent, user rpm rpd tpm tpd maxConcurrent, key token limit, key spend
    /// limit micros, budget micros, budget period end ms (0 = never resets), retry-after ms for a concurrency
    /// rejection. Limits are -1 when not set; a check whose limit is not set costs no Redis command (counters are
    /// still kept).
    /// Returns {allowed (1/0, -1 for a duplicate request id, -2 when the user has no balance key: the projection
    /// was lost and is not rebuilt yet), reason, retry-after ms (-1 = retrying cannot help),
    /// then the windows' counts before this request, normalised to now: key requests this minute, the previous
    /// minute, today; the same for the user; key tokens this minute, the previous minute, today; the same for the
    /// user} — the caller derives the rate-limit headers from them (<see cref="Enforcer"/>).
    /// </summary>
    /// <remarks>
    /// Commands for an admitted request: GET balance, ZADD NX (which doubles as the duplicate-id check), 2 HMGET rate
    /// hashes, HMGET lifetime, [GET budget with a budget], [ZREMRANGEBYSCORE + ZCARD per concurrency limit],
    /// 2 HSET rate hashes, 2 ZADD in-flight, HSET lifetime, DECRBY balance, SET PX or INCRBY budget,
    /// HSET reservation; plus a PEXPIRE per rate hash and in-flight set once a day.
    /// <para>
    /// Expiry without a PEXPIRE per call: a rate hash only matters until the end of the UTC day after its
    /// last write (its day windows reset at midnight, its minute windows after two minutes), so its TTL is
    /// set to "end of tomorrow" only when a write finds the stored day index stale (the first write of a
    /// key or user each day, or after it expired) — read from the HMGET the script does anyway. The
    /// in-flight sets piggyback on that same daily refresh.
    /// </para>
    /// </remarks>
    public static readonly LuaScript Admit = new("""
        local call, tonumber, fmt = redis.call, tonumber, string.format
        local MIN, DAY = 60000, 86400000
        -- Numbers used only as numbers come packed (ARGV[17]): one argument and no strtod per value.
        local now, lease, reserved, est, l_krm, l_krd, l_ktm, l_ktd, l_kc, l_urm, l_urd, l_utm, l_utd, l_uc,
          token_limit, spend_limit, budget, period_end, conc_retry = struct.unpack('<ADMIT_NUMBERS', ARGV[17])
        local min_idx = math.floor(now / MIN)
        local rest = MIN - (now - min_idx * MIN)
        local day_idx = math.floor(now / DAY)
        local day_left = (day_idx + 1) * DAY - now
        local mi, di = ARGV[14], ARGV[15]
        local rid = ARGV[2]
        -- Every projected user has a balance key (the operator writes it before the user's projection), so a
        -- missing one means Redis lost the projection (flushed, or restarted empty) and the operator has not
        -- rebuilt this user yet: nothing is known about the user's money, so nothing is admitted (-2).
        local bal_raw = call('GET', KEYS[6])
        if not bal_raw then return {-2} end
        -- The reservations zset member is written first and only if absent: that is the duplicate check
        -- (the member and the reservation hash are created and deleted together). A rejection removes it.
        if call('ZADD', KEYS[8], 'NX', ARGV[6], rid) == 0 then return {-1} end

        -- Each rate hash's windows normalised to the current minute and day: request and token counts of this
        -- minute and the previous one, of today; whether every stored index is current (then only the counts
        -- change) and whether the stored day is today (else the TTL is refreshed). The usual case is four
        -- string comparisons with the caller's indices; only a stale index is parsed (stale, built only then:
        -- every function here is a new closure per call).
        local kv = call('HMGET', KEYS[1], 'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc')
        local uv = call('HMGET', KEYS[2], 'rmi', 'rmc', 'rmp', 'tmi', 'tmc', 'tmp', 'rdi', 'rdc', 'tdi', 'tdc')
        local kok = kv[1] == mi and kv[4] == mi and kv[7] == di and kv[9] == di
        local uok = uv[1] == mi and uv[4] == mi and uv[7] == di and uv[9] == di
        local stale
        if not (kok and uok) then
          stale = function(v)
            local rc, rp, tc, tp, rd, td = 0, 0, 0, 0, 0, 0
            local rmi, tmi, rdi, tdi = tonumber(v[1]), tonumber(v[4]), tonumber(v[7]), tonumber(v[9])
            if (rmi or 0) == min_idx then rc, rp = tonumber(v[2]) or 0, tonumber(v[3]) or 0
            elseif (rmi or 0) == min_idx - 1 then rp = tonumber(v[2]) or 0 end
            if (tmi or 0) == min_idx then tc, tp = tonumber(v[5]) or 0, tonumber(v[6]) or 0
            elseif (tmi or 0) == min_idx - 1 then tp = tonumber(v[5]) or 0 end
            if (rdi or 0) == day_idx then rd = tonumber(v[8]) or 0 end
            if (tdi or 0) == day_idx then td = tonumber(v[10]) or 0 end
            return rc, rp, tc, tp, rd, td, rmi == min_idx and tmi == min_idx and rdi == day_idx and tdi == day_idx, rdi == day_idx
          end
        end
        local krc, krp, ktc, ktp, krd, ktd, kcur, kfresh
        if kok then
          krc, krp, ktc, ktp, krd, ktd, kcur, kfresh =
            (kv[2] or 0) + 0, (kv[3] or 0) + 0, (kv[5] or 0) + 0, (kv[6] or 0) + 0, (kv[8] or 0) + 0, (kv[10] or 0) + 0, true, true
        else
          krc, krp, ktc, ktp, krd, ktd, kcur, kfresh = stale(kv)
        end
        local urc, urp, utc, utp, urd, utd, ucur, ufresh
        if uok then
          urc, urp, utc, utp, urd, utd, ucur, ufresh =
            (uv[2] or 0) + 0, (uv[3] or 0) + 0, (uv[5] or 0) + 0, (uv[6] or 0) + 0, (uv[8] or 0) + 0, (uv[10] or 0) + 0, true, true
        else
          urc, urp, utc, utp, urd, utd, ucur, ufresh = stale(uv)
        end
        -- The previous minute's count weighted by the part of it still inside the last 60 s, rounded up.
        local ceil = math.ceil
        local wkr, wkt = ceil(krp * rest / MIN), ceil(ktp * rest / MIN)
        local wur, wut = ceil(urp * rest / MIN), ceil(utp * rest / MIN)

        -- Whether any check fails; which one and the retry-after are worked out on rejection only (below).
        local failed = (l_krm >= 0 and krc + wkr + 1 > l_krm) or (l_krd >= 0 and krd + 1 > l_krd)
          or (l_urm >= 0 and urc + wur + 1 > l_urm) or (l_urd >= 0 and urd + 1 > l_urd)
          or (l_ktm >= 0 and ktc + wkt + est > l_ktm) or (l_ktd >= 0 and ktd + est > l_ktd)
          or (l_utm >= 0 and utc + wut + est > l_utm) or (l_utd >= 0 and utd + est > l_utd)

        -- Slots are scored by lease expiry: a slot whose pod died stops counting when its lease passes.
        -- Without a limit nothing reads the set, so it is not swept here (settlement, release and the
        -- reservation expiry remove every member).
        local key_full, user_full = false, false
        if l_kc >= 0 then
          call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
          key_full = call('ZCARD', KEYS[3]) >= l_kc
        end
        if l_uc >= 0 then
          call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
          user_full = call('ZCARD', KEYS[4]) >= l_uc
        end

        local life = call('HMGET', KEYS[5], 'tokens', 'spend')
        local life_tokens, life_spend = tonumber(life[1]) or 0, tonumber(life[2]) or 0
        -- The balance was read first (above); the budget only when there is one to check.
        local balance, spent = tonumber(bal_raw) or 0, nil
        if budget >= 0 then spent = tonumber(call('GET', KEYS[7])) or 0 end
        failed = failed or key_full or user_full
          or (token_limit >= 0 and life_tokens + est > token_limit) or (spend_limit >= 0 and life_spend + reserved > spend_limit)
          or balance < reserved or (spent and spent + reserved > budget)

        if failed then
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
              return math.max(1, rest - math.floor((L - c - k) * MIN / pr))
            end
            -- wait for the next minute, where today's count becomes the weighted previous one
            local t = MIN - math.floor((L - k) * MIN / c)
            if t < 0 then t = 0 end
            return rest + t
          end
          if l_krm >= 0 and krc + wkr + 1 > l_krm then fail(1, minute_retry(l_krm, krc, krp, 1)) end
          if l_krd >= 0 and krd + 1 > l_krd then fail(2, 1 > l_krd and -1 or day_left) end
          if l_urm >= 0 and urc + wur + 1 > l_urm then fail(3, minute_retry(l_urm, urc, urp, 1)) end
          if l_urd >= 0 and urd + 1 > l_urd then fail(4, 1 > l_urd and -1 or day_left) end
          if l_ktm >= 0 and ktc + wkt + est > l_ktm then fail(5, minute_retry(l_ktm, ktc, ktp, est)) end
          if l_ktd >= 0 and ktd + est > l_ktd then fail(6, est > l_ktd and -1 or day_left) end
          if l_utm >= 0 and utc + wut + est > l_utm then fail(7, minute_retry(l_utm, utc, utp, est)) end
          if l_utd >= 0 and utd + est > l_utd then fail(8, est > l_utd and -1 or day_left) end
          if key_full then fail(9, conc_retry) end
          if user_full then fail(10, conc_retry) end
          if token_limit >= 0 and life_tokens + est > token_limit then fail(11, -1) end
          if spend_limit >= 0 and life_spend + reserved > spend_limit then fail(12, -1) end
          if balance < reserved then fail(13, -1) end
          if spent and spent + reserved > budget then
            if period_end > 0 then fail(14, period_end - now) else fail(14, -1) end
          end
          -- The counts go back to the caller, which derives the x-ratelimit-* headers from them (it has the
          -- limits and the clock), so no header arithmetic runs here.
          call('ZREM', KEYS[8], rid)
          return {0, reason, retry, krc, krp, krd, urc, urp, urd, ktc, ktp, ktd, utc, utp, utd}
        end

        -- When every stored index is already the current minute/day (the usual case), only the four counts
        -- change; otherwise the whole normalised state is written.
        if kcur then
          call('HSET', KEYS[1], 'rmc', fmt('%d', krc + 1), 'tmc', fmt('%d', ktc + est), 'rdc', fmt('%d', krd + 1), 'tdc', fmt('%d', ktd + est))
        else
          call('HSET', KEYS[1], 'rmi', mi, 'rmc', fmt('%d', krc + 1), 'rmp', fmt('%d', krp), 'tmi', mi, 'tmc', fmt('%d', ktc + est),
            'tmp', fmt('%d', ktp), 'rdi', di, 'rdc', fmt('%d', krd + 1), 'tdi', di, 'tdc', fmt('%d', ktd + est))
        end
        if ucur then
          call('HSET', KEYS[2], 'rmc', fmt('%d', urc + 1), 'tmc', fmt('%d', utc + est), 'rdc', fmt('%d', urd + 1), 'tdc', fmt('%d', utd + est))
        else
          call('HSET', KEYS[2], 'rmi', mi, 'rmc', fmt('%d', urc + 1), 'rmp', fmt('%d', urp), 'tmi', mi, 'tmc', fmt('%d', utc + est),
            'tmp', fmt('%d', utp), 'rdi', di, 'rdc', fmt('%d', urd + 1), 'tdi', di, 'tdc', fmt('%d', utd + est))
        end
        call('ZADD', KEYS[3], ARGV[6], rid)
        call('ZADD', KEYS[4], ARGV[6], rid)
        -- TTLs are relative (not PEXPIREAT) so a skew between the proxy's clock and Redis' cannot delete live
        -- keys, and refreshed on the first write of a UTC day. An in-flight set only needs a TTL for hygiene
        -- (settlement and the expiry sweep remove its members); "a lease plus two days" from the daily refresh
        -- outlives every member added that day unless a lease is over a day long, which refreshes it itself.
        local lease_ttl = lease - now
        local long_lease = lease_ttl > DAY
        if not kfresh then call('PEXPIRE', KEYS[1], fmt('%d', day_left + DAY)) end
        if not ufresh then call('PEXPIRE', KEYS[2], fmt('%d', day_left + DAY)) end
        if long_lease or not kfresh then call('PEXPIRE', KEYS[3], fmt('%d', lease_ttl + 2 * DAY)) end
        if long_lease or not ufresh then call('PEXPIRE', KEYS[4], fmt('%d', lease_ttl + 2 * DAY)) end
        call('HSET', KEYS[5], 'tokens', fmt('%d', life_tokens + est), 'spend', fmt('%d', life_spend + reserved))
        call('DECRBY', KEYS[6], ARGV[7])
        if spent and period_end > 0 then
          -- One SET with the TTL instead of INCRBY + PEXPIRE: the value was read above in this same script.
          call('SET', KEYS[7], fmt('%d', spent + reserved), 'PX', ARGV[16])
        else
          call('INCRBY', KEYS[7], ARGV[7])
          if period_end > 0 then call('PEXPIRE', KEYS[7], ARGV[16]) end
        end
        call('HSET', KEYS[9],
          'key_id', ARGV[3], 'key_version', ARGV[4], 'user_id', ARGV[5],
          'reserved', ARGV[7], 'est_in', ARGV[8], 'est_out', ARGV[9],
          'model', ARGV[10], 'route', ARGV[11], 'upstream', ARGV[12], 'price_version', ARGV[13],
          'started_at_ms', ARGV[1], 'expires_at_ms', ARGV[6], 'budget_key', KEYS[7],
          'min_idx', mi, 'day_idx', di)
        return {1, 0, 0, krc, krp, krd, urc, urp, urd, ktc, ktp, ktd, utc, utp, utd}
        """.Replace("ADMIT_NUMBERS", string.Concat(Enumerable.Repeat("i8", AdmitNumbers)), StringComparison.Ordinal));

    /// <summary>
    /// Ends a reservation: settle (actual cost), expire (charge the reservation) or release (charge nothing).
    /// KEYS: 1 reservation hash, 2 reservations zset, 3 key in-flight, 4 user in-flight, 5 key rate counters,
    /// 6 user rate counters, 7 key lifetime, 8 balance, 9 budget spent (the reservation's period), 10 usage stream.
    /// ARGV: 1 now ms, 2 request id, 3 mode (settle|expire|release), 4 actual micros, 5 actual tokens,
    /// 6 reserved micros, 7 estimated tokens, 8 admission's minute index, 9 admission's day index — 6 to 9 as
    /// the caller's own admission stored them, or 6 empty to read them from the reservation hash (always for
    /// expire) —, 10 now's minute index, 11 now's day index, 12 actual − reserved micros, 13 actual − estimated
    /// tokens (12 and 13 unused when 6 is empty), 14.. the usage event's values in
    /// <see cref="UsageStreamFields.Names"/> order (settle and expire).
    /// Returns the usage event's stream entry id when settled or expired (1 when released), 0 when the reservation was
    /// already ended (or lost with the projection), -1 (expire only) when its lease was renewed.
    /// </summary>
    public static readonly LuaScript Finish = new("""
        local call, tonumber, fmt, max = redis.call, tonumber, string.format, math.max
        local MIN, DAY = 60000, 86400000
        local rid, mode = ARGV[2], ARGV[3]
        local mi, di = ARGV[10], ARGV[11]
        -- est and actual_tokens as numbers; am, ad the admission's minute and day index as stored (text);
        -- ds, ts actual − reserved micros and actual − estimated tokens as text.
        local est, actual_tokens, am, ad, ds, ts, delta
        if ARGV[6] ~= '' then
          -- The caller's own admission sent what it stored, so the hash is only deleted: the deletion is the
          -- check that the reservation was still open.
          if call('DEL', KEYS[1]) == 0 then return 0 end
          est, actual_tokens, am, ad, ds, ts = ARGV[7] + 0, ARGV[5] + 0, ARGV[8], ARGV[9], ARGV[12], ARGV[13]
        else
          local v = call('HMGET', KEYS[1], 'reserved', 'est_in', 'est_out', 'min_idx', 'day_idx', 'budget_key', 'expires_at_ms')
          if not v[1] then return 0 end
          if mode == 'expire' and (tonumber(v[7]) or 0) > tonumber(ARGV[1]) then return -1 end
          if v[6] ~= KEYS[9] then return redis.error_reply('ERR the reservation was held against another budget key') end
          local reserved = tonumber(v[1]) or 0
          est = (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
          local actual = 0
          actual_tokens = 0
          if mode == 'settle' then actual, actual_tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
          elseif mode == 'expire' then actual, actual_tokens = reserved, est end
          am, ad = v[4], v[5]
          ds, ts = fmt('%d', actual - reserved), fmt('%d', actual_tokens - est)
          call('DEL', KEYS[1])
        end
        call('ZREM', KEYS[2], rid)
        call('ZREM', KEYS[3], rid)
        call('ZREM', KEYS[4], rid)

        if ds ~= '0' then
          -- The balance is real money: an actual cost above the reservation may take it below zero (a debt
          -- the next admission sees); it is never clamped, so it tracks the ledger (each cost rounded up to a micro-dollar).
          call('DECRBY', KEYS[8], ds)
          delta = ds + 0
          -- Period and lifetime counters are limits, not money: clamp at zero, and leave a budget period
          -- key that already expired alone rather than recreating it without a TTL.
          local spent = call('GET', KEYS[9])
          if spent then
            call('SET', KEYS[9], fmt('%d', max(0, (tonumber(spent) or 0) + delta)), 'KEEPTTL')
          end
        end
        if ds ~= '0' or ts ~= '0' then
          delta = delta or ds + 0
          local life = call('HMGET', KEYS[7], 'tokens', 'spend')
          call('HSET', KEYS[7], 'tokens', fmt('%d', max(0, (tonumber(life[1]) or 0) + actual_tokens - est)),
            'spend', fmt('%d', max(0, (tonumber(life[2]) or 0) + delta)))
        end

        -- Token windows: take the estimate back out of the window that still holds it, add the actual
        -- tokens to the current one. Only the token fields are read and written.
        if not (am == mi and ad == di and actual_tokens == est) then
          for h = 5, 6 do
            local w
            if am == mi and ad == di then
              -- Admitted this minute (the usual case): the previous minute's count matters only if a stored
              -- index is stale, so it is read only then.
              w = call('HMGET', KEYS[h], 'tmi', 'tmc', 'tdi', 'tdc')
              if w[1] == mi and w[3] == di then
                -- Indices current: only the two counts change.
                call('HSET', KEYS[h], 'tmc', fmt('%d', max(0, (w[2] or 0) - est) + actual_tokens),
                  'tdc', fmt('%d', max(0, (w[4] or 0) - est) + actual_tokens))
                w = nil
              else
                w = call('HMGET', KEYS[h], 'tmi', 'tmc', 'tmp', 'tdi', 'tdc')
              end
            else
              w = call('HMGET', KEYS[h], 'tmi', 'tmc', 'tmp', 'tdi', 'tdc')
            end
            if w then
              local now = tonumber(ARGV[1])
              local min_idx, day_idx = math.floor(now / MIN), math.floor(now / DAY)
              local adm_min, adm_day = tonumber(am) or 0, tonumber(ad) or 0
              local c, p, d = 0, 0, 0
              local tmi, tdi = tonumber(w[1]), tonumber(w[4])
              if (tmi or 0) == min_idx then c, p = tonumber(w[2]) or 0, tonumber(w[3]) or 0
              elseif (tmi or 0) == min_idx - 1 then p = tonumber(w[2]) or 0 end
              if adm_min == min_idx then c = max(0, c - est)
              elseif adm_min == min_idx - 1 then p = max(0, p - est) end
              if (tdi or 0) == day_idx then d = tonumber(w[5]) or 0 end
              if adm_day == day_idx then d = max(0, d - est) end
              if tmi == min_idx and tdi == day_idx and adm_min ~= min_idx - 1 then
                -- Indices current and the previous minute untouched: only the two counts change.
                call('HSET', KEYS[h], 'tmc', fmt('%d', c + actual_tokens), 'tdc', fmt('%d', d + actual_tokens))
              else
                call('HSET', KEYS[h], 'tmi', mi, 'tmc', fmt('%d', c + actual_tokens), 'tmp', fmt('%d', p),
                  'tdi', di, 'tdc', fmt('%d', d + actual_tokens))
              end
              if tdi ~= day_idx then call('PEXPIRE', KEYS[h], fmt('%d', (day_idx + 1) * DAY - now + DAY)) end
            end
          end
        end

        if mode ~= 'release' then
          -- Never trimmed here: an entry the ledger writer has not acknowledged must not be dropped. Its id goes back
          -- to the caller, whose UsageOutbox keeps the event until the ledger writer has it (see UsageOutbox).
          return call('XADD', KEYS[10], '*', XADD_FIELDS)
        end
        return 1
        """.Replace("XADD_FIELDS", XaddFields(14), StringComparison.Ordinal));

    /// <summary>
    /// Moves a live reservation's lease (long streams). KEYS: 1 reservation hash, 2 reservations zset,
    /// 3 key in-flight, 4 user in-flight. ARGV: 1 now ms, 2 request id, 3 new lease expiry ms.
    /// Returns 1, or 0 when the reservation already ended.
    /// </summary>
    public static readonly LuaScript Extend = new("""
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local now, lease, DAY = tonumber(ARGV[1]), tonumber(ARGV[3]), 86400000
        redis.call('HSET', KEYS[1], 'expires_at_ms', ARGV[3])
        -- Plain ZADD: a slot already swept as expired by another admission is taken again, since the
        -- request is evidently alive.
        for z = 2, 4 do redis.call('ZADD', KEYS[z], ARGV[3], ARGV[2]) end
        -- The same TTL rule as admission's daily refresh (a lease plus two days).
        for z = 3, 4 do redis.call('PEXPIRE', KEYS[z], string.format('%d', lease - now + 2 * DAY)) end
        return 1
        """);

    /// <summary>Values in Admit's ARGV[17], in order.</summary>
    public const int AdmitNumbers = 19;

    // 'request_id', ARGV[14], 'key_id', ARGV[15], ... for the XADD: the usage stream's field names as
    // constants of the script, so a settlement sends (and Redis interns) only the values.
    private static string XaddFields(int firstArg) =>
        string.Join(", ", UsageStreamFields.Names.Select((name, i) => $"'{name}', ARGV[{firstArg + i}]"));
}
