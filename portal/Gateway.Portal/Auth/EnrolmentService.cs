using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Auth;

/// <summary>The state of an invite link.</summary>
public enum InviteStatus
{
    Valid,
    Used,
    Expired,
    Unknown,
}

/// <summary>An invite link looked up by its token hash.</summary>
public sealed record InviteLookup(InviteStatus Status, Guid UserId = default, string Login = "", string Email = "", string? DisplayName = null, DateTimeOffset? ExpiresAt = null);

/// <summary>
/// Enrolment from the operator's invite link (users.invite_token_hash = SHA-256 hex of the token).
/// Completion is one transaction guarded by a conditional UPDATE on the invite hash, so an invite is
/// used once even when two requests race; it sets the password, the protected TOTP secret, the
/// accepted time step, enrollment = 'Enrolled' (which the operator reflects into UserQuota status and
/// which stops it from issuing invites), clears the hash and stores ten hashed recovery codes.
/// </summary>
public sealed class EnrolmentService(IDbContextFactory<TokenGateDbContext> dbFactory, Credentials credentials, AuditLog audit, TimeProvider time, ILogger<EnrolmentService> logger)
{
    public static string HashInviteToken(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    public async Task<InviteLookup> LookupAsync(string inviteHash, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking()
            .Where(u => u.InviteTokenHash == inviteHash && u.DeletedAt == null)
            .Select(u => new { u.Id, u.Login, u.Email, u.DisplayName, u.Enrollment, u.InviteExpiresAt })
            .SingleOrDefaultAsync(ct);
        if (user is not null && user.Enrollment == "Invited")
        {
            return user.InviteExpiresAt is { } exp && exp > now
                ? new InviteLookup(InviteStatus.Valid, user.Id, user.Login, user.Email, user.DisplayName, exp)
                : new InviteLookup(InviteStatus.Expired, ExpiresAt: user.InviteExpiresAt);
        }
        if (await db.UsedInvites.AnyAsync(i => i.TokenHash == inviteHash, ct)) return new InviteLookup(InviteStatus.Used);
        return new InviteLookup(InviteStatus.Unknown);
    }

    /// <summary>
    /// Finishes enrolment after the first authenticator code was confirmed at <paramref name="totpStep"/>.
    /// Returns the recovery codes to show once, or null when the invite is no longer valid.
    /// </summary>
    public async Task<IReadOnlyList<string>?> CompleteAsync(EnrolmentState state, long totpStep, ClientInfo client, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.PasswordHash is null || state.TotpSecret is null) throw new InvalidOperationException("Enrolment is not ready to complete.");
        var now = time.GetUtcNow();
        var protectedSecret = credentials.ProtectTotpSecret(state.TotpSecret);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var updated = await db.Users
            .Where(u => u.Id == state.UserId && u.InviteTokenHash == state.InviteHash && u.Enrollment == "Invited"
                && u.DeletedAt == null && u.InviteExpiresAt > now)
            .ExecuteUpdateAsync(u => u
                .SetProperty(x => x.PasswordHash, state.PasswordHash)
                .SetProperty(x => x.TotpSecretProtected, protectedSecret)
                .SetProperty(x => x.TotpLastStep, totpStep)
                .SetProperty(x => x.Enrollment, "Enrolled")
                .SetProperty(x => x.InviteTokenHash, (string?)null)
                .SetProperty(x => x.FailedSignins, 0)
                .SetProperty(x => x.LockedUntil, (DateTimeOffset?)null)
                .SetProperty(x => x.UpdatedAt, now), ct);
        if (updated != 1)
        {
            Log.EnrolmentRefused(logger, "the invite was used or expired before the last step");
            return null;
        }
        var codes = Credentials.NewRecoveryCodes();
        foreach (var c in codes)
        {
            db.RecoveryCodes.Add(new RecoveryCodeRow { UserId = state.UserId, CodeHash = Credentials.HashRecoveryCode(state.UserId, c), CreatedAt = now });
        }
        db.UsedInvites.Add(new UsedInviteRow { TokenHash = state.InviteHash, UserId = state.UserId, UsedAt = now });
        audit.Add(db, state.UserId, AuditActions.PasswordSet, null, client);
        audit.Add(db, state.UserId, AuditActions.TotpEnabled, null, client);
        audit.Add(db, state.UserId, AuditActions.RecoveryCodesGenerated, Credentials.RecoveryCodeCount.ToString(System.Globalization.CultureInfo.InvariantCulture), client);
        audit.Add(db, state.UserId, AuditActions.Enrolled, null, client);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        Log.Enrolled(logger, state.UserId);
        return codes;
    }
}
