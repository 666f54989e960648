using Gateway.Core.Resources;

namespace Gateway.Core.Projection;

/// <summary>What the proxy needs to know about one key version, stored under its hash.</summary>
public sealed record KeyProjection
{
    /// <summary>api_keys.id.</summary>
    public required string KeyId { get; init; }
    /// <summary>"namespace/name" of the ApiKey.</summary>
    public required string Name { get; init; }
    public required int Version { get; init; }
    /// <summary>users.id of the owner.</summary>
    public required string UserId { get; init; }
    public string? KeyPrefix { get; init; }
    public List<string> AllowedModels { get; init; } = [];
    public KeyLimits? Limits { get; init; }
    public decimal? DiscountRate { get; init; }
    /// <summary>Spec expiry of the key.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }
    /// <summary>For a superseded version: end of its grace period.</summary>
    public DateTimeOffset? ValidUntil { get; init; }
    public bool Disabled { get; init; }
}

/// <summary>What the proxy needs to know about a user.</summary>
public sealed record UserProjection
{
    public required string UserId { get; init; }
    /// <summary>"namespace/name" of the UserQuota.</summary>
    public required string Name { get; init; }
    public List<string> AllowedModels { get; init; } = [];
    public RateLimits? Limits { get; init; }
    public LabelSelector? UpstreamSelector { get; init; }
    /// <summary>Accounts tried first for this user; null when the user has none.</summary>
    public LabelSelector? DedicatedSelector { get; init; }
    /// <summary>With <see cref="DedicatedSelector"/>: whether the shared pool is used after the dedicated accounts.</summary>
    public bool FallbackToShared { get; init; } = true;
    public decimal? DiscountRate { get; init; }
    public Budget? Budget { get; init; }
    public bool Suspended { get; init; }
}

/// <summary>An upstream account with its resolved credential.</summary>
public sealed record UpstreamProjection
{
    /// <summary>"namespace/name" of the UpstreamAccount; also its metric label.</summary>
    public required string Name { get; init; }
    public required string Provider { get; init; }
    public required string BaseUrl { get; init; }
    /// <summary>
    /// The API key or OAuth access token sent upstream, in memory only. Never logged. In Redis it is null: the
    /// operator stores <see cref="EncryptedCredential"/> instead, unless it runs without a credential key
    /// (development setting TokenGate:Credentials:AllowPlaintext).
    /// </summary>
    public string? Credential { get; init; }
    /// <summary>The credential sealed by <see cref="Security.CredentialProtector"/> ("v1:keyId:…", account name as associated data).</summary>
    public string? EncryptedCredential { get; init; }
    public List<UpstreamModel> Models { get; init; } = [];
    public int Priority { get; init; }
    public int Weight { get; init; } = 1;
    public UpstreamLimits? Limits { get; init; }
    public Dictionary<string, string> Labels { get; init; } = [];
    public bool Disabled { get; init; }
    /// <summary>True for an OAuth subscription account (its credential is an access token the operator refreshes).</summary>
    public bool OAuth { get; init; }
    /// <summary>Extra request headers (spec.headers), validated by the operator.</summary>
    public Dictionary<string, string>? Headers { get; init; }
    /// <summary>Upstream path overrides by the route's usual path (spec.paths), validated by the operator.</summary>
    public Dictionary<string, string>? Paths { get; init; }
    /// <summary>The plan's usage windows (spec.windows), validated by the operator.</summary>
    public List<UpstreamWindow>? Windows { get; init; }
    /// <summary>When the OAuth access token expires (from the account's Secret); null for API keys or when unknown.</summary>
    public DateTimeOffset? TokenExpiresAt { get; init; }
    /// <summary>oauth.refreshBefore in seconds (how long before expiry the operator refreshes); null for API keys.</summary>
    public int? RefreshBeforeSeconds { get; init; }
    /// <summary>Price version for model price overrides: "ua:namespace/name@generation".</summary>
    public string? PriceVersion { get; init; }
}
