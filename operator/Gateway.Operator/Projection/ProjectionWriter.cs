using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Security;

namespace Gateway.Operator.Projection;

/// <summary>
/// Writes the Redis projection the proxy reads. The operator is its only writer; every change is
/// followed by an invalidation message so proxy caches drop the entry at once. Upstream credentials are
/// encrypted here, the one place they are written, so no caller can put one into Redis in plaintext.
/// </summary>
public sealed class ProjectionWriter(IRedisClient redis, ProjectionKeys keys, CredentialProtector credentials)
{
    // Initialises a balance only when absent (new user or rebuilt Redis), recording which grants it includes.
    private static readonly LuaScript InitBalanceScript = new("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('SET', KEYS[1], ARGV[1])
        for i = 2, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
        return 1
        """);

    // Credits a grant once: the grant id set makes a repeated credit a no-op.
    private static readonly LuaScript CreditGrantScript = new("""
        if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
          return redis.call('INCRBY', KEYS[1], ARGV[2])
        end
        return false
        """);

    // Sets a key's lifetime tokens and spend only when absent (a new owner's shard, or a rebuilt Redis).
    private static readonly LuaScript SeedLifetimeScript = new("""
        if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
        redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'spend', ARGV[2])
        return 1
        """);

    public ProjectionKeys Keys => keys;

    /// <summary>Whether the key's lifetime tokens and spend exist in its owner's shard.</summary>
    public async Task<bool> HasKeyLifetimeAsync(string userId, string keyId, CancellationToken ct) =>
        (await redis.ExecuteAsync("EXISTS", [keys.KeyLifetime(userId, keyId)], ct)).AsInt64() == 1;

    /// <summary>Sets the key's lifetime tokens and spend (micro-dollars, each usage row's cost rounded up, as settlement
    /// counts it) in its owner's shard if they are missing there. Returns true when it set them.</summary>
    public async Task<bool> SeedKeyLifetimeAsync(string userId, string keyId, long tokens, long spendMicros, CancellationToken ct) =>
        (await redis.EvalAsync(SeedLifetimeScript, [keys.KeyLifetime(userId, keyId)], [tokens, spendMicros], ct)).AsInt64() == 1;

    public async Task WriteKeyAsync(string keyHash, KeyProjection projection, CancellationToken ct)
    {
        await redis.ExecuteAsync("SET", [keys.Key(keyHash), JsonSerializer.Serialize(projection, TokenGateJson.Options)], ct);
        await PublishAsync(Invalidation.ForKey(keyHash), ct);
    }

    public async Task DeleteKeyAsync(string keyHash, CancellationToken ct)
    {
        await redis.ExecuteAsync("DEL", [keys.Key(keyHash)], ct);
        await PublishAsync(Invalidation.ForKey(keyHash), ct);
    }

    public async Task WriteUserAsync(UserProjection projection, CancellationToken ct)
    {
        await redis.ExecuteAsync("SET", [keys.User(projection.UserId), JsonSerializer.Serialize(projection, TokenGateJson.Options)], ct);
        await PublishAsync(Invalidation.ForUser(projection.UserId), ct);
    }

    public async Task DeleteUserAsync(string userId, CancellationToken ct)
    {
        await redis.ExecuteAsync("DEL", [keys.User(userId)], ct);
        await PublishAsync(Invalidation.ForUser(userId), ct);
    }

    /// <summary>Sets the balance from the ledger if Redis has none. Returns true when it was set.</summary>
    public async Task<bool> InitBalanceAsync(string userId, long balanceMicros, IReadOnlyList<string> creditedGrantIds, CancellationToken ct)
    {
        var args = new List<RedisArg>(creditedGrantIds.Count + 1) { balanceMicros };
        foreach (var g in creditedGrantIds) args.Add(g);
        var r = await redis.EvalAsync(InitBalanceScript, [keys.Balance(userId), GrantsKey(userId)], args, ct);
        return r.AsInt64() == 1;
    }

    /// <summary>Adds a grant to the live balance once. Returns true when it was credited now.</summary>
    public async Task<bool> CreditGrantAsync(string userId, string grantId, long micros, CancellationToken ct)
    {
        var r = await redis.EvalAsync(CreditGrantScript, [keys.Balance(userId), GrantsKey(userId)], [grantId, micros], ct);
        return !r.IsNull;
    }

    public async Task<long?> GetBalanceMicrosAsync(string userId, CancellationToken ct)
    {
        var r = await redis.ExecuteAsync("GET", [keys.Balance(userId)], ct);
        return r.IsNull ? null : r.AsInt64();
    }

    public async Task WriteUpstreamsAsync(IReadOnlyList<UpstreamProjection> upstreams, CancellationToken ct)
    {
        var stored = new List<UpstreamProjection>(upstreams.Count);
        foreach (var u in upstreams) stored.Add(Seal(u));
        await redis.ExecuteAsync("SET", [keys.Upstreams, JsonSerializer.Serialize(stored, TokenGateJson.Options)], ct);
        await PublishAsync(Invalidation.Upstreams, ct);
    }

    /// <summary>The account as stored: its credential encrypted with the active key (plaintext only without keys, a development setting).</summary>
    private UpstreamProjection Seal(UpstreamProjection upstream)
    {
        if (string.IsNullOrEmpty(upstream.Credential) || !credentials.CanEncrypt) return upstream;
        return upstream with { Credential = null, EncryptedCredential = credentials.Protect(upstream.Credential, upstream.Name) };
    }

    /// <summary>Starts a rebuild: its epoch is the Redis time (unix ms) now, remembered in Redis until
    /// <see cref="MarkEpochAsync"/>. Returns the epoch.</summary>
    public async Task<string> BeginRebuildAsync(CancellationToken ct)
    {
        var ms = await redis.TimeMillisecondsAsync(ct);
        // The time, and a random part so two rebuilds in one millisecond still differ (UsageOutbox reads the time part).
        var epoch = ms.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4));
        await redis.ExecuteAsync("SET", [keys.Rebuilding, epoch], ct);
        return epoch;
    }

    /// <summary>Marks the projection complete after the rebuild <paramref name="epoch"/> began (<see cref="BeginRebuildAsync"/>);
    /// a missing epoch means Redis lost it and it must be rebuilt. Written only when absent, so its value changes only with
    /// a rebuild after a loss (each process's UsageOutbox watches for that), and only if the rebuild's own marker is still
    /// there: Redis that lost its data again during the rebuild keeps no epoch, and the next check rebuilds again.
    /// True when marked.</summary>
    public async Task<bool> MarkEpochAsync(string epoch, CancellationToken ct) =>
        (await redis.EvalAsync(MarkEpochScript, [keys.Epoch, keys.Rebuilding], [epoch], ct)).AsInt64() == 1;

    private static readonly LuaScript MarkEpochScript = new("""
        if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
        redis.call('SET', KEYS[1], ARGV[1], 'NX')
        redis.call('DEL', KEYS[2])
        return 1
        """);

    public async Task<bool> HasEpochAsync(CancellationToken ct) => (await redis.ExecuteAsync("EXISTS", [keys.Epoch], ct)).AsInt64() == 1;

    private string GrantsKey(string userId) => keys.BalanceGrants(userId);

    private Task PublishAsync(string message, CancellationToken ct) => redis.ExecuteAsync("PUBLISH", [keys.InvalidationChannel, message], ct);
}
