using System.Security.Cryptography;
using Gateway.Core.Redis;

namespace Gateway.Operator.OAuth;

/// <summary>
/// One refresh in flight per account across replicas and restarts: a Redis lease taken with SET NX PX and a
/// random fencing value. Only the holder of that value can extend or release it (compare-and-set scripts), so
/// a replica whose lease ran out never frees a lease another replica has taken since.
/// </summary>
public sealed class OAuthRefreshLease(IRedisClient redis, OAuthRedisKeys keys)
{
    private static readonly LuaScript ReleaseScript = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """);

    private static readonly LuaScript ExtendScript = new("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return 0
        """);

    /// <summary>Takes the account's lease; returns the fencing value, or null when another replica holds it.</summary>
    public async Task<string?> TryAcquireAsync(string account, string holder, TimeSpan duration, CancellationToken ct)
    {
        var fence = holder + ":" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var r = await redis.ExecuteAsync("SET", [keys.Lease(account), fence, "PX", (long)duration.TotalMilliseconds, "NX"], ct);
        return r.IsNull ? null : fence;
    }

    /// <summary>Pushes the lease's expiry out; false when it is no longer held with <paramref name="fence"/>.</summary>
    public async Task<bool> ExtendAsync(string account, string fence, TimeSpan duration, CancellationToken ct) =>
        (await redis.EvalAsync(ExtendScript, [keys.Lease(account)], [fence, (long)duration.TotalMilliseconds], ct)).AsInt64() == 1;

    /// <summary>Releases the lease if it is still held with <paramref name="fence"/>.</summary>
    public async Task ReleaseAsync(string account, string fence, CancellationToken ct) =>
        await redis.EvalAsync(ReleaseScript, [keys.Lease(account)], [fence], ct);
}
