using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Core.Enforcement;

/// <summary>
/// Keeps the usage stream bounded without losing events. Settlement never trims (a MAXLEN on XADD would
/// drop entries the ledger writer has not persisted yet when it lags, e.g. while PostgreSQL is down).
/// The ledger writer deletes what it persisted and acknowledged (XDEL); <see cref="TrimAcknowledgedAsync"/> is the
/// tool for a stream some other consumer group also reads (an operator's own audit group, say). It
/// removes only entries every consumer group has acknowledged: those below the group's oldest pending
/// entry, or up to its last delivered entry when nothing is pending. A stream without groups is left whole.
/// </summary>
public static class UsageStreamTrim
{
    // One script so the group positions cannot move between reading them and trimming.
    private static readonly LuaScript Trim = new("""
        local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
        if groups.err or #groups == 0 then return 0 end
        local function parse(id)
          local a, b = string.match(id, '^(%d+)-(%d+)$')
          return tonumber(a), tonumber(b)
        end
        local best_ms, best_seq
        for _, g in ipairs(groups) do
          local f = {}
          for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
          local ms, seq
          if tonumber(f['pending']) > 0 then
            ms, seq = parse(redis.call('XPENDING', KEYS[1], f['name'])[2])
          else
            ms, seq = parse(f['last-delivered-id'])
            seq = seq + 1
          end
          if not best_ms or ms < best_ms or (ms == best_ms and seq < best_seq) then best_ms, best_seq = ms, seq end
        end
        return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', best_ms, best_seq))
        """);

    /// <summary>Deletes the entries every consumer group has acknowledged from each shard's usage stream; returns how many.</summary>
    public static async Task<long> TrimAcknowledgedAsync(IRedisClient redis, ProjectionKeys keys, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(redis);
        ArgumentNullException.ThrowIfNull(keys);
        var trimmed = await Task.WhenAll(ProjectionKeys.Shards.Select(shard => TrimAcknowledgedAsync(redis, keys.UsageStream(shard), cancellationToken)))
            .ConfigureAwait(false);
        return trimmed.Sum();
    }

    /// <summary>Deletes the entries of one usage stream that every consumer group has acknowledged; returns how many.</summary>
    public static async Task<long> TrimAcknowledgedAsync(IRedisClient redis, string stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(redis);
        var reply = await redis.EvalAsync(Trim, [stream], [], cancellationToken).ConfigureAwait(false);
        return reply.AsInt64();
    }
}
