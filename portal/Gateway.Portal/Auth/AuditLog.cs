using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Auth;

/// <summary>Audit actions written by the portal (the Security page shows them to the user).</summary>
public static class AuditActions
{
    public const string SignIn = "signin";
    public const string SignOut = "signout";
    public const string SignOutEverywhere = "signout.everywhere";
    public const string Enrolled = "enrolment.completed";
    public const string PasswordSet = "password.set";
    public const string TotpEnabled = "totp.enabled";
    public const string RecoveryCodesGenerated = "recovery_codes.generated";
    public const string RecoveryCodeUsed = "recovery_code.used";
    public const string LockedOut = "signin.locked_out";
    public const string PasswordChanged = "password.changed";
    public const string TotpReset = "totp.reset";
    public const string TotpResetRefused = "totp.reset_refused";
    public const string SessionRevoked = "session.revoked";
}

/// <summary>Appends to the append-only <c>audit_log</c> table (a trigger refuses updates and deletes).</summary>
public sealed class AuditLog(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider time)
{
    /// <summary>Appends one entry in its own transaction. <paramref name="detail"/> must never hold a secret.</summary>
    public async Task AppendAsync(Guid? userId, string action, string? detail, ClientInfo? client, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        Add(db, userId, action, detail, client);
        await db.SaveChangesAsync(ct);
    }

    /// <summary>Adds an entry to <paramref name="db"/> so it commits with the caller's other changes.</summary>
    public void Add(TokenGateDbContext db, Guid? userId, string action, string? detail, ClientInfo? client)
    {
        ArgumentNullException.ThrowIfNull(db);
        db.AuditLog.Add(new AuditLogRow
        {
            UserId = userId,
            Action = action,
            Detail = detail,
            Ip = client?.Ip,
            UserAgent = client?.UserAgent,
            CreatedAt = time.GetUtcNow(),
        });
    }
}
