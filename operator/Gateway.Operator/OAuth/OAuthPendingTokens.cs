using System.Text.Json;
using Gateway.Core.Redis;
using Gateway.Core.Security;

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
/// The auth JSON is encrypted with the projection's credential key ring (AES-GCM, bound to the account), so
/// Redis never holds a token in plaintext unless the ring runs without keys (development).
/// </summary>
public sealed class OAuthPendingTokens(IRedisClient redis, OAuthRedisKeys keys, CredentialProtector credentials)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task SaveAsync(string account, PendingTokens pending, CancellationToken ct)
    {
        var stored = credentials.CanEncrypt ? pending with { AuthJson = credentials.Protect(pending.AuthJson, AssociatedData(account)) } : pending;
        await redis.ExecuteAsync("SET", [keys.Pending(account), JsonSerializer.Serialize(stored, Json)], ct);
    }

    public async Task<PendingTokens?> GetAsync(string account, CancellationToken ct)
    {
        var r = await redis.ExecuteAsync("GET", [keys.Pending(account)], ct);
        if (r.IsNull) return null;
        var stored = JsonSerializer.Deserialize<PendingTokens>(r.AsString()!, Json);
        if (stored is null || !CredentialProtector.IsEnvelope(stored.AuthJson)) return stored;
        if (!credentials.TryUnprotect(stored.AuthJson, AssociatedData(account), out var json, out var failure, out var keyId))
            throw new InvalidOperationException($"The pending OAuth token pair of {account} does not decrypt ({failure}, key id '{keyId}'): the key that wrote it must stay in the credential key ring until the pair is written.");
        return stored with { AuthJson = json };
    }

    // Bound to the account and to this use, so the ciphertext is useless as a projection credential or for another account.
    private static string AssociatedData(string account) => account + "#oauth-pending";

    public async Task DeleteAsync(string account, CancellationToken ct) =>
        await redis.ExecuteAsync("DEL", [keys.Pending(account)], ct);
}
