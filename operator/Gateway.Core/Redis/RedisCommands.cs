using Gateway.Core.Redis.Cluster;

namespace Gateway.Core.Redis;

/// <summary>Convenience wrappers over <see cref="IRedisClient.ExecuteAsync"/> for common string, key and pub/sub commands.</summary>
public static class RedisCommands
{
    /// <summary>GET key; null when the key does not exist.</summary>
    public static async Task<string?> GetAsync(this IRedisClient client, string key, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("GET", [key], cancellationToken).ConfigureAwait(false)).AsString();

    /// <summary>SET key value [PX ms]. With <paramref name="onlyIfAbsent"/> (NX), returns false when the key existed.</summary>
    public static async Task<bool> SetAsync(
        this IRedisClient client, string key, RedisArg value, TimeSpan? expiry = null, bool onlyIfAbsent = false, CancellationToken cancellationToken = default)
    {
        RespValue reply;
        if (expiry is { } ttl)
        {
            var ms = (long)Math.Ceiling(ttl.TotalMilliseconds);
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(ms, nameof(expiry));
            reply = onlyIfAbsent
                ? await client.ExecuteAsync("SET", [key, value, "PX", ms, "NX"], cancellationToken).ConfigureAwait(false)
                : await client.ExecuteAsync("SET", [key, value, "PX", ms], cancellationToken).ConfigureAwait(false);
        }
        else
        {
            reply = onlyIfAbsent
                ? await client.ExecuteAsync("SET", [key, value, "NX"], cancellationToken).ConfigureAwait(false)
                : await client.ExecuteAsync("SET", [key, value], cancellationToken).ConfigureAwait(false);
        }
        return !reply.IsNull;
    }

    /// <summary>TIME: the Redis server's clock in unix milliseconds (the one clock every replica shares).</summary>
    public static async Task<long> TimeMillisecondsAsync(this IRedisClient client, CancellationToken cancellationToken = default)
    {
        var t = (await client.ExecuteAsync("TIME", [], cancellationToken).ConfigureAwait(false)).Items;
        return long.Parse(t[0].AsString()!, System.Globalization.CultureInfo.InvariantCulture) * 1000
            + long.Parse(t[1].AsString()!, System.Globalization.CultureInfo.InvariantCulture) / 1000;
    }

    /// <summary>
    /// GET of many keys, as one MGET per hash slot (<see cref="RedisKeySlot"/>), so no command spans two slots on Redis
    /// Cluster; the MGETs are sent together. Returns one value per key, in order (null when missing).
    /// </summary>
    public static async Task<IReadOnlyList<RespValue>> MGetPerSlotAsync(this IRedisClient client, IReadOnlyList<string> keys, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var groups = keys.Select((key, index) => (key, index)).GroupBy(k => RedisKeySlot.Of(k.key)).ToArray();
        var replies = await Task.WhenAll(groups.Select(g =>
            client.ExecuteAsync("MGET", g.Select(k => (RedisArg)k.key).ToList(), cancellationToken))).ConfigureAwait(false);
        var values = new RespValue[keys.Count];
        for (var g = 0; g < groups.Length; g++)
        {
            var j = 0;
            foreach (var (_, index) in groups[g]) values[index] = replies[g].Items[j++];
        }
        return values;
    }

    /// <summary>INCRBY key delta; returns the new value.</summary>
    public static async Task<long> IncrByAsync(this IRedisClient client, string key, long delta = 1, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("INCRBY", [key, delta], cancellationToken).ConfigureAwait(false)).AsInt64();

    /// <summary>DEL key...; returns how many keys were removed.</summary>
    public static async Task<long> DelAsync(this IRedisClient client, IReadOnlyList<RedisArg> keys, CancellationToken cancellationToken = default) =>
        keys.Count == 0 ? 0 : (await client.ExecuteAsync("DEL", keys, cancellationToken).ConfigureAwait(false)).AsInt64();

    /// <summary>DEL key; returns true when the key existed.</summary>
    public static async Task<bool> DelAsync(this IRedisClient client, string key, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("DEL", [key], cancellationToken).ConfigureAwait(false)).AsInt64() == 1;

    /// <summary>PEXPIRE key ms; returns false when the key does not exist.</summary>
    public static async Task<bool> ExpireAsync(this IRedisClient client, string key, TimeSpan ttl, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("PEXPIRE", [key, (long)Math.Ceiling(ttl.TotalMilliseconds)], cancellationToken).ConfigureAwait(false)).AsInt64() == 1;

    /// <summary>PUBLISH channel message; returns how many subscribers (connections) received it.</summary>
    public static async Task<long> PublishAsync(this IRedisClient client, string channel, string message, CancellationToken cancellationToken = default) =>
        (await client.ExecuteAsync("PUBLISH", [channel, message], cancellationToken).ConfigureAwait(false)).AsInt64();

    /// <summary>PING; for readiness checks.</summary>
    public static async Task PingAsync(this IRedisClient client, CancellationToken cancellationToken = default) =>
        await client.ExecuteAsync("PING", [], cancellationToken).ConfigureAwait(false);
}
