using System.Text.Json;
using Gateway.Core.Redis;

namespace Gateway.Operator.OAuth;

/// <summary>A refresh the provider refused or that could not complete. Error and description are the provider's (never a token).</summary>
/// <param name="RefreshFingerprint">Fingerprint of the refresh token that failed: a new token in the Secret clears the failure.</param>
public sealed record OAuthFailure(bool Rejected, string Error, string Description, DateTimeOffset At, string RefreshFingerprint);

/// <summary>What the refresher knows about one account, shared by every replica (so a new leader continues the backoff).</summary>
public sealed record OAuthAccountState
{
    public DateTimeOffset? LastRefreshAt { get; init; }
    public OAuthFailure? Failure { get; init; }
    /// <summary>Consecutive failures (the backoff exponent).</summary>
    public int Attempts { get; init; }
    public DateTimeOffset? NextAttemptAt { get; init; }
    /// <summary>The last tokengate.io/refresh annotation value acted on.</summary>
    public string? HandledRequest { get; init; }

    /// <summary>The failure, if it still applies to the refresh token the Secret holds now.</summary>
    public OAuthFailure? FailureFor(string refreshFingerprint) => Failure is { } f && f.RefreshFingerprint == refreshFingerprint ? f : null;
}

/// <summary>Per-account refresh state in Redis (a small JSON string per account), read by the reconciler for status.</summary>
public sealed class OAuthStateStore(IRedisClient redis, OAuthRedisKeys keys)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public async Task<OAuthAccountState> GetAsync(string account, CancellationToken ct)
    {
        var r = await redis.ExecuteAsync("GET", [keys.State(account)], ct);
        if (r.IsNull) return new OAuthAccountState();
        try
        {
            return JsonSerializer.Deserialize<OAuthAccountState>(r.AsString()!, Json) ?? new OAuthAccountState();
        }
        catch (JsonException)
        {
            return new OAuthAccountState();
        }
    }

    /// <summary>Like <see cref="GetAsync"/>, but an empty state when Redis is unreachable: the reconciler keeps
    /// reconciling PostgreSQL and status without Redis, judging the token by its expiry alone.</summary>
    public async Task<OAuthAccountState> GetOrEmptyAsync(string account, CancellationToken ct)
    {
        try
        {
            return await GetAsync(account, ct);
        }
        catch (Exception e) when (e is RedisConnectionException or RedisServerException)
        {
            return new OAuthAccountState();
        }
    }

    /// <summary>When a proxy last asked for a refresh because the upstream rejected the token (401), or null.</summary>
    public async Task<DateTimeOffset?> RefreshRequestedAtAsync(string account, CancellationToken ct)
    {
        var r = await redis.ExecuteAsync("GET", [keys.RefreshRequest(account)], ct);
        return long.TryParse(r.AsString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var ms) && ms > 0
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
    }

    public async Task SetAsync(string account, OAuthAccountState state, CancellationToken ct) =>
        await redis.ExecuteAsync("SET", [keys.State(account), JsonSerializer.Serialize(state, Json)], ct);

    public async Task DeleteAsync(string account, CancellationToken ct) =>
        await redis.ExecuteAsync("DEL", [keys.State(account)], ct);
}
