using System.Globalization;
using Gateway.Core.Storage;
using Gateway.Core.Totp;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Auth;

/// <summary>Outcome of a password change.</summary>
public sealed record PasswordChangeResult(bool Succeeded, bool WrongPassword, IReadOnlyList<PasswordProblem> Problems, int SessionsEnded);

/// <summary>
/// A signed-in user's own credential changes (Security page): change the password (ends the user's other
/// sessions), replace the TOTP secret (password and a current code first, then a code from the new secret),
/// and regenerate the recovery codes. Each change is one transaction together with its audit entry. A
/// current TOTP code is accepted once, by the same conditional UPDATE on <c>totp_last_step</c> as sign-in.
/// </summary>
public sealed class AccountSecurityService(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    Credentials credentials,
    AuditLog audit,
    IDataProtectionProvider dataProtection,
    TimeProvider time,
    ILogger<AccountSecurityService> logger)
{
    /// <summary>How long a new TOTP secret waits for its confirming code.</summary>
    public static readonly TimeSpan PendingTotpLifetime = TimeSpan.FromMinutes(10);

    public async Task<PasswordChangeResult> ChangePasswordAsync(Guid userId, Guid? currentSessionId, string? currentPassword, string? newPassword, string? confirmation, ClientInfo client, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == userId, ct);
        if (!credentials.VerifyPassword(user.PasswordHash, currentPassword ?? "", out _))
        {
            Log.SecurityChangeRefused(logger, userId, "password change: wrong current password");
            return new PasswordChangeResult(false, true, [], 0);
        }
        var problems = PasswordPolicy.Check(newPassword, confirmation, user.Login, user.Email).ToList();
        if (problems.Count > 0) return new PasswordChangeResult(false, false, problems, 0);

        var now = time.GetUtcNow();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(u => u
            .SetProperty(x => x.PasswordHash, credentials.HashPassword(newPassword!))
            .SetProperty(x => x.UpdatedAt, now), ct);
        // Every other session ends with the old password; this device stays signed in.
        var ended = await db.PortalSessions.Where(s => s.UserId == userId && s.RevokedAt == null && s.Id != currentSessionId)
            .ExecuteUpdateAsync(u => u.SetProperty(s => s.RevokedAt, now), ct);
        audit.Add(db, userId, AuditActions.PasswordChanged, Invariant(ended) + " other sessions ended", client);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        Log.SecurityChanged(logger, userId, "password changed");
        return new PasswordChangeResult(true, false, [], ended);
    }

    /// <summary>
    /// First step of a TOTP reset: checks the password and a current code from the old secret (spending
    /// that code). Returns a protected token carrying a fresh secret, or null when either check failed.
    /// </summary>
    public async Task<(string Token, string Secret)?> BeginTotpResetAsync(Guid userId, string? password, string? code, ClientInfo client, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == userId, ct);
        var passwordOk = credentials.VerifyPassword(user.PasswordHash, password ?? "", out _);
        var codeOk = passwordOk && await SpendTotpCodeAsync(db, user, code, ct);
        if (!codeOk)
        {
            audit.Add(db, userId, AuditActions.TotpResetRefused, passwordOk ? "wrong code" : "wrong password", client);
            await db.SaveChangesAsync(ct);
            Log.SecurityChangeRefused(logger, userId, "TOTP reset: " + (passwordOk ? "wrong code" : "wrong password"));
            return null;
        }
        var secret = TotpService.GenerateBase32Secret();
        return (PendingProtector(userId).Protect(secret, PendingTotpLifetime), secret);
    }

    /// <summary>The pending secret behind a token from <see cref="BeginTotpResetAsync"/>, or null when it is forged, another user's or expired.</summary>
    public string? ReadPendingSecret(Guid userId, string? token)
    {
        if (string.IsNullOrEmpty(token)) return null;
        try
        {
            return PendingProtector(userId).Unprotect(token, out _);
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }

    /// <summary>Second step: a code from the new secret confirms it; only then does it replace the old one.</summary>
    public async Task<bool> CompleteTotpResetAsync(Guid userId, string pendingSecret, string? code, ClientInfo client, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(pendingSecret);
        var check = new TotpService(time).Verify(Base32.Decode(pendingSecret), (code ?? "").Trim());
        if (!check.Success) return false;
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(u => u
            .SetProperty(x => x.TotpSecretProtected, credentials.ProtectTotpSecret(pendingSecret))
            .SetProperty(x => x.TotpLastStep, check.TimeStep)
            .SetProperty(x => x.UpdatedAt, now), ct);
        audit.Add(db, userId, AuditActions.TotpReset, null, client);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        Log.SecurityChanged(logger, userId, "authenticator replaced");
        return true;
    }

    /// <summary>
    /// Replaces every recovery code with ten new ones after the password or a current TOTP code; returns
    /// the codes to show once, or null when the check failed.
    /// </summary>
    public async Task<IReadOnlyList<string>?> RegenerateRecoveryCodesAsync(Guid userId, string? password, string? code, ClientInfo client, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == userId, ct);
        var ok = !string.IsNullOrEmpty(password)
            ? credentials.VerifyPassword(user.PasswordHash, password, out _)
            : await SpendTotpCodeAsync(db, user, code, ct);
        if (!ok)
        {
            Log.SecurityChangeRefused(logger, userId, "recovery codes: check failed");
            return null;
        }
        var now = time.GetUtcNow();
        var codes = Credentials.NewRecoveryCodes();
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.RecoveryCodes.Where(r => r.UserId == userId).ExecuteDeleteAsync(ct);
        foreach (var c in codes)
        {
            db.RecoveryCodes.Add(new RecoveryCodeRow { UserId = userId, CodeHash = Credentials.HashRecoveryCode(userId, c), CreatedAt = now });
        }
        audit.Add(db, userId, AuditActions.RecoveryCodesGenerated, Invariant(codes.Count) + " (old codes invalidated)", client);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        Log.SecurityChanged(logger, userId, "recovery codes regenerated");
        return codes;
    }

    /// <summary>Verifies a code from the user's current secret and spends its time step (atomic across replicas).</summary>
    private async Task<bool> SpendTotpCodeAsync(TokenGateDbContext db, UserRow user, string? code, CancellationToken ct)
    {
        if (user.TotpSecretProtected is null || string.IsNullOrWhiteSpace(code)) return false;
        var check = new TotpService(time).Verify(credentials.UnprotectTotpSecret(user.TotpSecretProtected), code.Trim());
        if (!check.Success) return false;
        return await db.Users.Where(u => u.Id == user.Id && (u.TotpLastStep == null || u.TotpLastStep < check.TimeStep))
            .ExecuteUpdateAsync(u => u.SetProperty(x => x.TotpLastStep, check.TimeStep), ct) == 1;
    }

    private ITimeLimitedDataProtector PendingProtector(Guid userId) =>
        dataProtection.CreateProtector("TokenGate.Portal.TotpReset.v1", userId.ToString("N")).ToTimeLimitedDataProtector();

    private static string Invariant(int n) => n.ToString(CultureInfo.InvariantCulture);
}
