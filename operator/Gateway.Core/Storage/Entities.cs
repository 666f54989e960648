namespace Gateway.Core.Storage;

/// <summary>A TokenGate user (from a UserQuota). Rows are soft-deleted so the ledger stays traceable.</summary>
public sealed class UserRow
{
    public Guid Id { get; set; }
    public string Namespace { get; set; } = "";
    public string Name { get; set; } = "";
    public string Login { get; set; } = "";
    public string Email { get; set; } = "";
    public string? DisplayName { get; set; }
    public string? PasswordHash { get; set; }
    /// <summary>TOTP secret, encrypted with data protection; never plaintext.</summary>
    public string? TotpSecretProtected { get; set; }
    public long? TotpLastStep { get; set; }
    public string Enrollment { get; set; } = "Invited";
    public string? InviteTokenHash { get; set; }
    public DateTimeOffset? InviteExpiresAt { get; set; }
    public bool Suspended { get; set; }
    /// <summary>Portal role from the UserQuota's spec.portal.role: user or admin.</summary>
    public string PortalRole { get; set; } = "user";
    /// <summary>Consecutive failed portal sign-ins (reset on success or when a lockout has ended).</summary>
    public int FailedSignins { get; set; }
    /// <summary>Portal sign-in is refused until this time.</summary>
    public DateTimeOffset? LockedUntil { get; set; }
    public string Spec { get; set; } = "{}";
    public long Generation { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
}

/// <summary>An ApiKey; its key material lives in <see cref="ApiKeyVersionRow"/> as hashes only.</summary>
public sealed class ApiKeyRow
{
    public Guid Id { get; set; }
    public string Namespace { get; set; } = "";
    public string Name { get; set; } = "";
    public Guid UserId { get; set; }
    public string? Description { get; set; }
    public int CurrentVersion { get; set; }
    public string? KeyPrefix { get; set; }
    public bool Disabled { get; set; }
    public DateTimeOffset? ExpiresAt { get; set; }
    public string? LastRotateRequest { get; set; }
    /// <summary>Created by the operator for a portal request (label tokengate.io/created-by=portal).</summary>
    public bool PortalCreated { get; set; }
    /// <summary>Disabled by its owner in the portal (for keys whose spec belongs to GitOps).</summary>
    public bool UserDisabled { get; set; }
    public string Spec { get; set; } = "{}";
    public long Generation { get; set; }
    public DateTimeOffset? LastUsedAt { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
}

/// <summary>One issued version of a key: HMAC-SHA256(pepper, key) and its display prefix.</summary>
public sealed class ApiKeyVersionRow
{
    public long Id { get; set; }
    public Guid ApiKeyId { get; set; }
    public int Version { get; set; }
    public string KeyHash { get; set; } = "";
    public string KeyPrefix { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>End of the grace period once superseded.</summary>
    public DateTimeOffset? ExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>An UpstreamAccount (credentials stay in Secrets, never here).</summary>
public sealed class UpstreamAccountRow
{
    public Guid Id { get; set; }
    public string Namespace { get; set; } = "";
    public string Name { get; set; } = "";
    public string Provider { get; set; } = "";
    public string BaseUrl { get; set; } = "";
    public int Priority { get; set; }
    public int Weight { get; set; }
    public bool Disabled { get; set; }
    public string Spec { get; set; } = "{}";
    public long Generation { get; set; }
    /// <summary>When the OAuth access token expires, as the operator last read it (M0006); null for API keys or unknown.</summary>
    public DateTimeOffset? TokenExpiresAt { get; set; }
    /// <summary>The last error the operator saw for the account (M0006), as in its status; null when it is fine.</summary>
    public string? LastError { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }
    public DateTimeOffset? DeletedAt { get; set; }
}

/// <summary>Ledger entry kinds. Credits are positive amounts, debits negative.</summary>
public static class LedgerKinds
{
    public const string Grant = "grant";
    public const string Consume = "consume";
    public const string Refund = "refund";
    public const string Adjust = "adjust";
    public const string Expire = "expire";
}

/// <summary>Append-only ledger; balance = sum(amount).</summary>
public sealed class LedgerEntryRow
{
    public long Id { get; set; }
    public Guid UserId { get; set; }
    public string Kind { get; set; } = "";
    public decimal Amount { get; set; }
    public string? GrantId { get; set; }
    public string? RequestId { get; set; }
    public Guid? ApiKeyId { get; set; }
    public string? PriceVersion { get; set; }
    public string? Reason { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>One row per proxied request.</summary>
public sealed class UsageLogRow
{
    public long Id { get; set; }
    public string RequestId { get; set; } = "";
    public Guid? ApiKeyId { get; set; }
    public int KeyVersion { get; set; }
    public Guid? UserId { get; set; }
    public string Upstream { get; set; } = "";
    public string Model { get; set; } = "";
    public string Route { get; set; } = "";
    public long InputTokens { get; set; }
    public long CachedInputTokens { get; set; }
    public long CacheWriteTokens { get; set; }
    public long OutputTokens { get; set; }
    public decimal Cost { get; set; }
    public string PriceVersion { get; set; } = "";
    public DateTimeOffset StartedAt { get; set; }
    public int DurationMs { get; set; }
    public int? TtfbMs { get; set; }
    public int Status { get; set; }
    public bool Estimated { get; set; }
    public bool Streamed { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string? ClientIp { get; set; }
    public string? ErrorCode { get; set; }
}
