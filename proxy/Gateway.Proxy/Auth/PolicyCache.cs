using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Proxy.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Auth;

/// <summary>
/// In-process cache of the key and user projections, filled from Redis on a miss. Entries are dropped
/// by invalidation messages (pub/sub, see <see cref="InvalidationListener"/>) and expire after a short
/// TTL so a missed message is bounded. Unknown key hashes are cached too (negative entries) so a flood
/// of wrong keys does not become a flood of Redis reads.
/// </summary>
public sealed class PolicyCache
{
    private const int MaxEntries = 200_000;
    private readonly IRedisClient _redis;
    private readonly ProjectionKeys _keys;
    private readonly long _ttlTicks;
    private readonly ConcurrentDictionary<string, Entry<KeyProjection>> _byKeyHash = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Entry<UserProjection>> _byUser = new(StringComparer.Ordinal);
    // Bumped by every invalidation: a fetch that raced with one is returned but not cached.
    private long _generation;

    public PolicyCache(IRedisClient redis, ProjectionKeys keys, IOptions<ProxyOptions> options)
    {
        _redis = redis;
        _keys = keys;
        _ttlTicks = (long)(options.Value.PolicyCacheTtlSeconds * Stopwatch.Frequency);
    }

    /// <summary>The key projection for a hash, or null when no such key exists. Throws <see cref="RedisConnectionException"/> when Redis is unreachable on a miss,
    /// <see cref="ProjectionMissingException"/> when Redis lost the projection and it is not rebuilt yet.</summary>
    public ValueTask<KeyProjection?> GetKeyAsync(string keyHash, CancellationToken cancellationToken)
    {
        if (_byKeyHash.TryGetValue(keyHash, out var e) && Stopwatch.GetTimestamp() < e.ExpiresAt) return new ValueTask<KeyProjection?>(e.Value);
        return FetchAsync(_byKeyHash, keyHash, _keys.Key(keyHash), cancellationToken);
    }

    /// <summary>The user projection, or null when the user is not projected.</summary>
    public ValueTask<UserProjection?> GetUserAsync(string userId, CancellationToken cancellationToken)
    {
        if (_byUser.TryGetValue(userId, out var e) && Stopwatch.GetTimestamp() < e.ExpiresAt) return new ValueTask<UserProjection?>(e.Value);
        return FetchAsync(_byUser, userId, _keys.User(userId), cancellationToken);
    }

    /// <summary>Applies one invalidation message: "key:&lt;hash&gt;", "user:&lt;id&gt;", "upstreams" or "all".</summary>
    public void Invalidate(string message)
    {
        Interlocked.Increment(ref _generation);
        if (message.StartsWith("key:", StringComparison.Ordinal))
        {
            if (_byKeyHash.TryRemove(message[4..], out var removed) && removed.Value is { } key) Invalidated?.Invoke(key.KeyId, null);
        }
        else if (message.StartsWith("user:", StringComparison.Ordinal))
        {
            _byUser.TryRemove(message[5..], out _);
            Invalidated?.Invoke(null, message[5..]);
        }
        else if (message == Invalidation.All) Clear();
    }

    /// <summary>A key (by id) or a user was invalidated; both null: everything was (quota leases taken under the old policy
    /// are dropped, see <see cref="Gateway.Core.Enforcement.LeaseBook.Invalidate"/>).</summary>
    public event Action<string?, string?>? Invalidated;

    /// <summary>Drops everything (after a reconnect, when messages may have been missed).</summary>
    public void Clear()
    {
        Interlocked.Increment(ref _generation);
        _byKeyHash.Clear();
        _byUser.Clear();
        Invalidated?.Invoke(null, null);
    }

    private async ValueTask<T?> FetchAsync<T>(ConcurrentDictionary<string, Entry<T>> map, string id, string redisKey, CancellationToken cancellationToken) where T : class
    {
        var generation = Interlocked.Read(ref _generation);
        // With the epoch in the same read: "no such key" is an answer only while the projection is complete. Without an
        // epoch Redis lost its data (or was never built) and the operator is rebuilding it: retry, not "invalid key".
        var replies = (await _redis.ExecuteAsync("MGET", [redisKey, _keys.Epoch], cancellationToken).ConfigureAwait(false)).Items;
        var reply = replies[0];
        if (reply.IsNull && replies[1].IsNull) throw new ProjectionMissingException();
        T? value = reply.IsNull ? null : JsonSerializer.Deserialize<T>(reply.Bytes, TokenGateJson.Options);
        if (Interlocked.Read(ref _generation) == generation)
        {
            if (map.Count >= MaxEntries) map.Clear();
            map[id] = new Entry<T>(value, Stopwatch.GetTimestamp() + _ttlTicks);
        }
        return value;
    }

    private sealed record Entry<T>(T? Value, long ExpiresAt) where T : class;
}
