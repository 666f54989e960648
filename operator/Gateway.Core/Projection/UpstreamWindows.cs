using Gateway.Core.Redis;
using Gateway.Core.Resources;

namespace Gateway.Core.Projection;

/// <summary>One account's requests and tokens in each rolling window, in the order of <see cref="UpstreamWindows.Periods"/>.</summary>
public sealed record WindowTotals(long[] Requests, long[] Tokens)
{
    public static WindowTotals Zero => new(new long[UpstreamWindows.Periods.Length], new long[UpstreamWindows.Periods.Length]);

    /// <summary>The requests and tokens of one period ("1m", "5h", "1d" or "7d"); zeros for an unknown period.</summary>
    public (long Requests, long Tokens) Of(string period)
    {
        var i = UpstreamWindows.IndexOf(period);
        return i < 0 ? (0, 0) : (Requests[i], Tokens[i]);
    }
}

/// <summary>One account's new requests and tokens to add to its windows (zeros: only read them).</summary>
public readonly record struct WindowDelta(string Account, long Requests, long Tokens);

/// <summary>
/// Every upstream account's requests and tokens in rolling windows of one minute, five hours, one day and one week,
/// shared by all proxy replicas (which add their counts about once a second) and read by the operator (status,
/// metrics). Each window is 60 buckets of a sixtieth of its period (1 s, 5 min, 24 min, 168 min) in one hash per
/// account (<see cref="ProjectionKeys.UpstreamWindows"/>), with a running total per window: a call moves each window
/// to the current bucket, subtracting the buckets that left it (at most 60 per window), adds the deltas and returns
/// the totals. So a window's figure covers its period to within one bucket (1/60 of it), and a call costs the same
/// whatever the traffic. Buckets are indexed by the Redis server's clock (TIME), so replicas' clock skew does not
/// matter; a clock stepped back keeps adding to the newest bucket.
/// </summary>
public static class UpstreamWindows
{
    /// <summary>The windows, shortest first: name and period.</summary>
    public static readonly (string Name, TimeSpan Period)[] Periods =
    [
        ("1m", TimeSpan.FromMinutes(1)),
        (WindowPeriods.FiveHours, TimeSpan.FromHours(5)),
        (WindowPeriods.OneDay, TimeSpan.FromDays(1)),
        (WindowPeriods.SevenDays, TimeSpan.FromDays(7)),
    ];

    /// <summary>Buckets per window.</summary>
    public const int Buckets = 60;

    /// <summary>Index of <paramref name="period"/> in <see cref="Periods"/>, or -1.</summary>
    public static int IndexOf(string period)
    {
        for (var i = 0; i < Periods.Length; i++)
        {
            if (Periods[i].Name == period) return i;
        }
        return -1;
    }

    // KEYS: one windows hash per account. ARGV[1]: TTL (seconds), ARGV[2]: now (unix ms) for tests, 0 = the server's
    // clock; then a (requests, tokens) delta pair per key.
    // Returns per key, per window in Periods' order: requests, tokens.
    // Fields per window w: w:h (bucket index the totals are at), w:R / w:T (totals), w:r:<bucket> / w:t:<bucket>.
    internal static readonly LuaScript Script = new("""
        local ttl = tonumber(ARGV[1])
        local now = tonumber(ARGV[2])
        if now == 0 then
          local time = redis.call('TIME')
          now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
        end
        local windows = { {'1m', 1000}, {'5h', 300000}, {'1d', 1440000}, {'7d', 10080000} }
        local n = 60
        local out = {}
        for i = 1, #KEYS do
          local key = KEYS[i]
          local dr = tonumber(ARGV[2 * i + 1])
          local dt = tonumber(ARGV[2 * i + 2])
          local wrote = false
          for _, w in ipairs(windows) do
            local name = w[1]
            local cur = math.floor(now / w[2])
            local state = redis.call('HMGET', key, name .. ':h', name .. ':R', name .. ':T')
            local head = tonumber(state[1])
            local r = tonumber(state[2]) or 0
            local t = tonumber(state[3]) or 0
            local moved = false
            if head == nil then
              head = cur
              moved = true
            elseif cur > head then
              local last = math.min(head, cur - n)
              for b = head - n + 1, last do
                local v = redis.call('HMGET', key, name .. ':r:' .. b, name .. ':t:' .. b)
                if v[1] or v[2] then
                  r = r - (tonumber(v[1]) or 0)
                  t = t - (tonumber(v[2]) or 0)
                  redis.call('HDEL', key, name .. ':r:' .. b, name .. ':t:' .. b)
                end
              end
              if cur - head >= n then r = 0; t = 0 end
              head = cur
              moved = true
            end
            if dr > 0 or dt > 0 then
              redis.call('HINCRBY', key, name .. ':r:' .. head, dr)
              redis.call('HINCRBY', key, name .. ':t:' .. head, dt)
              r = r + dr
              t = t + dt
              moved = true
            end
            if moved then
              redis.call('HSET', key, name .. ':h', head, name .. ':R', r, name .. ':T', t)
              wrote = true
            end
            out[#out + 1] = r
            out[#out + 1] = t
          end
          if wrote then redis.call('EXPIRE', key, ttl) end
        end
        return out
        """);

    /// <summary>The hash outlives the longest window by a day, so an idle account's week still reads right.</summary>
    internal static readonly long TtlSeconds = (long)(TimeSpan.FromDays(8).TotalSeconds);

    /// <summary>Adds each delta to its account's windows and returns every account's totals afterwards, in the order given.</summary>
    /// <param name="nowUnixMs">The instant to count at, for tests; null: the Redis server's clock.</param>
    public static async Task<WindowTotals[]> AddAndReadAsync(IRedisClient redis, ProjectionKeys keys, IReadOnlyList<WindowDelta> deltas,
        CancellationToken cancellationToken, long? nowUnixMs = null)
    {
        if (deltas.Count == 0) return [];
        var k = new List<RedisArg>(deltas.Count);
        var a = new List<RedisArg>(2 + 2 * deltas.Count) { TtlSeconds, nowUnixMs ?? 0 };
        foreach (var d in deltas)
        {
            k.Add(keys.UpstreamWindows(d.Account));
            a.Add(Math.Max(0, d.Requests));
            a.Add(Math.Max(0, d.Tokens));
        }
        var reply = await redis.EvalAsync(Script, k, a, cancellationToken).ConfigureAwait(false);
        var items = reply.Items;
        var width = 2 * Periods.Length;
        if (items.Count < width * deltas.Count)
            throw new InvalidOperationException("The windows script returned fewer values than accounts.");
        var result = new WindowTotals[deltas.Count];
        for (var i = 0; i < deltas.Count; i++)
        {
            var requests = new long[Periods.Length];
            var tokens = new long[Periods.Length];
            for (var w = 0; w < Periods.Length; w++)
            {
                requests[w] = items[i * width + 2 * w].AsInt64();
                tokens[w] = items[i * width + 2 * w + 1].AsInt64();
            }
            result[i] = new WindowTotals(requests, tokens);
        }
        return result;
    }

    /// <summary>
    /// The share of an account's window limits still free, from 0 (some limit reached) to 1 (nothing used): the
    /// smallest free share over every limit of every window in <paramref name="limits"/>. 1 without limits.
    /// </summary>
    public static double Headroom(IReadOnlyList<UpstreamWindow>? limits, WindowTotals totals)
    {
        if (limits is null || limits.Count == 0) return 1;
        var headroom = 1.0;
        foreach (var limit in limits)
        {
            var (requests, tokens) = totals.Of(limit.Period);
            if (limit.Requests is long r and > 0) headroom = Math.Min(headroom, Free(requests, r));
            if (limit.Tokens is long t and > 0) headroom = Math.Min(headroom, Free(tokens, t));
        }
        return headroom;
    }

    /// <summary>The free share of one window's limit, from 0 to 1.</summary>
    public static double Free(long used, long limit) => limit <= 0 ? 1 : Math.Clamp(1 - (double)used / limit, 0, 1);
}
