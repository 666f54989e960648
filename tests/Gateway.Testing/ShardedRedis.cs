using System.Globalization;
using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Testing;

/// <summary>
/// Test reads across the projection's shards (<see cref="ProjectionKeys.ShardOf"/>): each shard has its own usage stream,
/// reservation set and lease set, so "every usage event" or "every open lease" means all of them.
/// </summary>
public static class ShardedRedis
{
    /// <summary>Every usage stream entry of every shard (id and fields as written), oldest first.</summary>
    public static async Task<List<(string Id, Dictionary<string, string> Fields)>> UsageEntriesAsync(IRedisClient redis, ProjectionKeys keys)
    {
        var entries = new List<(long Ms, long Seq, string Id, Dictionary<string, string> Fields)>();
        foreach (var shard in ProjectionKeys.Shards)
        {
            var reply = await redis.ExecuteAsync("XRANGE", [keys.UsageStream(shard), "-", "+"]);
            foreach (var entry in reply.Items)
            {
                var id = entry.Items[0].AsString()!;
                var pairs = entry.Items[1].Items;
                var fields = new Dictionary<string, string>(StringComparer.Ordinal);
                for (var i = 0; i + 1 < pairs.Count; i += 2) fields[pairs[i].AsString()!] = pairs[i + 1].AsString() ?? "";
                var dash = id.IndexOf('-', StringComparison.Ordinal);
                entries.Add((long.Parse(id.AsSpan(0, dash), CultureInfo.InvariantCulture), long.Parse(id.AsSpan(dash + 1), CultureInfo.InvariantCulture), id, fields));
            }
        }
        return entries.OrderBy(e => e.Ms).ThenBy(e => e.Seq).Select(e => (e.Id, e.Fields)).ToList();
    }

    /// <summary>XLEN summed over every shard's usage stream.</summary>
    public static async Task<long> UsageLengthAsync(IRedisClient redis, ProjectionKeys keys)
    {
        long total = 0;
        foreach (var shard in ProjectionKeys.Shards) total += await redis.StreamLengthAsync(keys.UsageStream(shard));
        return total;
    }

    /// <summary>ZCARD summed over every shard's set (e.g. <c>keys.Reservations</c>, <c>keys.Leases</c>).</summary>
    public static async Task<long> CountAsync(IRedisClient redis, Func<int, string> zsetOfShard)
    {
        long total = 0;
        foreach (var shard in ProjectionKeys.Shards) total += (await redis.ExecuteAsync("ZCARD", [zsetOfShard(shard)])).AsInt64();
        return total;
    }

    /// <summary>Every member of every shard's set, with its shard.</summary>
    public static async Task<List<(int Shard, string Member)>> MembersAsync(IRedisClient redis, Func<int, string> zsetOfShard)
    {
        var members = new List<(int, string)>();
        foreach (var shard in ProjectionKeys.Shards)
            foreach (var m in (await redis.ExecuteAsync("ZRANGE", [zsetOfShard(shard), 0, -1])).Items) members.Add((shard, m.AsString()!));
        return members;
    }

    /// <summary>The reservation hash of <paramref name="requestId"/> in whichever shard holds it; null when none does.</summary>
    public static async Task<string?> FindReservationAsync(IRedisClient redis, ProjectionKeys keys, string requestId)
    {
        foreach (var shard in ProjectionKeys.Shards)
        {
            var key = keys.Reservation(shard, requestId);
            if ((await redis.ExecuteAsync("EXISTS", [key])).AsInt64() == 1) return key;
        }
        return null;
    }

    /// <summary>DEL of one key per shard (e.g. every usage stream).</summary>
    public static async Task DeleteAsync(IRedisClient redis, Func<int, string> keyOfShard)
    {
        foreach (var shard in ProjectionKeys.Shards) await redis.ExecuteAsync("DEL", [keyOfShard(shard)]);
    }
}
