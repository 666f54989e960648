using System.Text.Json;
using Gateway.Core.Redis;

namespace Gateway.Operator.OAuth;

/// <summary>
/// A token pair the provider issued that has not reached the Secret yet. <see cref="UsedRefreshFingerprint"/>
/// names the refresh token it replaced (a fingerprint, not the token), so a recovery can tell whether the Secret
/// still holds that one (write the pending pair), already holds the new one (done) or was replaced by a person.
/// </summary>
public sealed record PendingTokens(string SecretKey, string AuthJson, string UsedRefreshFingerprint, string NewRefreshFingerprint, DateTimeOffset AcceptedAt, DateTimeOffset? ExpiresAt);

/// <summary>
/// Durable hand-over between "the provider accepted the refresh" and "the Secret holds the new pair". Refresh
/// tokens are single-use: once the provider rotated one, the new pair exists nowhere else, so it is written here
/// first (Redis, no expiry, never logged) and deleted only after the Secret write succeeded. A replica that
/// crashes in between leaves it for the next leader, which writes it to the Secret before refreshing again.
/// Redis rather than PostgreSQL: it needs no schema change and the operator already depends on it for the
/// lease; losing Redis and crashing inside the same few milliseconds is the remaining (documented) window.
/// </summary>
public sealed class OAuthPendingTokens(IRedisClient redis, OAuthRedisKeys keys)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task SaveAsync(string account, PendingTokens pending, CancellationToken ct) =>
        await redis.ExecuteAsync("SET", [keys.Pending(account), JsonSerializer.Serialize(pending, Json)], ct);

    public async Task<PendingTokens?> GetAsync(string account, CancellationToken ct)
    {
        var r = await redis.ExecuteAsync("GET", [keys.Pending(account)], ct);
        return r.IsNull ? null : JsonSerializer.Deserialize<PendingTokens>(r.AsString()!, Json);
    }

    public async Task DeleteAsync(string account, CancellationToken ct) =>
        await redis.ExecuteAsync("DEL", [keys.Pending(account)], ct);
}
