using Microsoft.EntityFrameworkCore;

namespace Gateway.Core.Storage;

/// <summary>A portal session; only the SHA-256 of its token is stored.</summary>
public sealed class PortalSessionRow
{
    public Guid Id { get; set; }
    public string TokenHash { get; set; } = "";
    public Guid UserId { get; set; }
    public string UserAgent { get; set; } = "";
    public string Ip { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset LastSeenAt { get; set; }
    public DateTimeOffset ExpiresAt { get; set; }
    public DateTimeOffset? RevokedAt { get; set; }
}

/// <summary>One portal sign-in attempt (user_id is null when the login matched nobody).</summary>
public sealed class SigninEventRow
{
    public long Id { get; set; }
    public Guid? UserId { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    public string Ip { get; set; } = "";
    public string UserAgent { get; set; } = "";
    public string Result { get; set; } = "";
}

/// <summary>An append-only record of what a user (or the portal on their behalf) did.</summary>
public sealed class AuditLogRow
{
    public long Id { get; set; }
    public Guid? UserId { get; set; }
    public string Action { get; set; } = "";
    public string? Detail { get; set; }
    public string? Ip { get; set; }
    public string? UserAgent { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>A one-time recovery code, stored as a salted SHA-256.</summary>
public sealed class RecoveryCodeRow
{
    public long Id { get; set; }
    public Guid UserId { get; set; }
    public string CodeHash { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
    public DateTimeOffset? UsedAt { get; set; }
}

/// <summary>An invite that was used to enrol (kept so its link can say so).</summary>
public sealed class UsedInviteRow
{
    public string TokenHash { get; set; } = "";
    public Guid UserId { get; set; }
    public DateTimeOffset UsedAt { get; set; }
}

/// <summary>One XML element of the portal's data-protection key ring.</summary>
public sealed class DataProtectionKeyRow
{
    public int Id { get; set; }
    public string FriendlyName { get; set; } = "";
    public string Xml { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}

/// <summary>EF mapping of the portal's tables (schema in migration M0002_PortalAuth).</summary>
public static class PortalEntities
{
    public static void Configure(ModelBuilder b)
    {
        ArgumentNullException.ThrowIfNull(b);
        b.Entity<PortalSessionRow>(e => { e.ToTable("portal_sessions"); e.HasKey(x => x.Id); e.HasIndex(x => x.TokenHash).IsUnique(); });
        b.Entity<SigninEventRow>(e => { e.ToTable("signin_events"); e.HasKey(x => x.Id); });
        b.Entity<AuditLogRow>(e => { e.ToTable("audit_log"); e.HasKey(x => x.Id); });
        b.Entity<RecoveryCodeRow>(e => { e.ToTable("recovery_codes"); e.HasKey(x => x.Id); });
        b.Entity<UsedInviteRow>(e => { e.ToTable("used_invites"); e.HasKey(x => x.TokenHash); });
        b.Entity<DataProtectionKeyRow>(e => { e.ToTable("dataprotection_keys"); e.HasKey(x => x.Id); });
    }
}
