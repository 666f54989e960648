using Gateway.Core.Storage;
using Gateway.Core.Totp;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Auth;

/// <summary>Outcomes of a sign-in attempt, as recorded in <c>signin_events.result</c>.</summary>
public static class SignInResults
{
    public const string Success = "success";
    public const string SuccessRecoveryCode = "success_recovery_code";
    public const string UnknownUser = "unknown_user";
    public const string BadPassword = "bad_password";
    public const string BadCode = "bad_code";
    public const string ReplayedCode = "replayed_code";
    public const string LockedOut = "locked_out";
    public const string Suspended = "suspended";
    public const string NotEnrolled = "not_enrolled";
}

/// <summary>What the sign-in page needs to know about an attempt.</summary>
public sealed record SignInOutcome(bool Succeeded, string Result, Guid? UserId = null, string? Login = null, string? Role = null, DateTimeOffset? LockedUntil = null);

/// <summary>
/// Checks a login (or e-mail), password and second factor (TOTP code or one-time recovery code).
/// Failures count towards a per-user lockout stored in PostgreSQL; a TOTP time step and a recovery code
/// are each accepted once, enforced by conditional UPDATEs so two replicas cannot both accept them.
/// Every attempt is recorded in <c>signin_events</c>.
/// </summary>
public sealed class SignInService(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    Credentials credentials,
    AuditLog audit,
    TimeProvider time,
    IOptions<PortalOptions> options,
    ILogger<SignInService> logger)
{
    public async Task<SignInOutcome> SignInAsync(string loginOrEmail, string password, string code, ClientInfo client, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        loginOrEmail = (loginOrEmail ?? "").Trim();
        password ??= "";
        code = (code ?? "").Trim();
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);

        var key = loginOrEmail.ToLowerInvariant();
        var matches = loginOrEmail.Length == 0 ? [] : await db.Users.AsNoTracking()
            .Where(u => u.DeletedAt == null && (u.Login.ToLower() == key || u.Email.ToLower() == key))
            .OrderBy(u => u.Id).Take(2).ToListAsync(ct);
        // An ambiguous name (two users share it) signs nobody in.
        var user = matches.Count == 1 ? matches[0] : null;
        if (user is null)
        {
            credentials.VerifyNobody(password);
            return await FinishAsync(db, new SignInOutcome(false, SignInResults.UnknownUser), client, ct);
        }
        if (user.LockedUntil is { } until && until > now)
        {
            return await FinishAsync(db, new SignInOutcome(false, SignInResults.LockedOut, user.Id, LockedUntil: until), client, ct);
        }
        if (!credentials.VerifyPassword(user.PasswordHash, password, out var rehash))
        {
            return await FailAsync(db, user, SignInResults.BadPassword, client, ct);
        }
        if (user.Enrollment != "Enrolled" || user.TotpSecretProtected is null)
        {
            return await FinishAsync(db, new SignInOutcome(false, SignInResults.NotEnrolled, user.Id), client, ct);
        }

        string result;
        if (Credentials.LooksLikeRecoveryCode(code))
        {
            var hash = Credentials.HashRecoveryCode(user.Id, code);
            var used = await db.RecoveryCodes.Where(r => r.UserId == user.Id && r.CodeHash == hash && r.UsedAt == null)
                .ExecuteUpdateAsync(u => u.SetProperty(r => r.UsedAt, now), ct);
            if (used != 1) return await FailAsync(db, user, SignInResults.BadCode, client, ct);
            result = SignInResults.SuccessRecoveryCode;
        }
        else
        {
            var totp = new TotpService(time);
            // The replay check is the conditional UPDATE below (atomic across replicas), not the row read above.
            var check = totp.Verify(credentials.UnprotectTotpSecret(user.TotpSecretProtected), code);
            if (!check.Success) return await FailAsync(db, user, SignInResults.BadCode, client, ct);
            // Only one request (on any replica) can move the last step forward to this step.
            var accepted = await db.Users.Where(u => u.Id == user.Id && (u.TotpLastStep == null || u.TotpLastStep < check.TimeStep))
                .ExecuteUpdateAsync(u => u.SetProperty(x => x.TotpLastStep, check.TimeStep), ct);
            if (accepted != 1) return await FailAsync(db, user, SignInResults.ReplayedCode, client, ct);
            result = SignInResults.Success;
        }

        // The account may have been suspended or locked by a concurrent attempt meanwhile; check once more.
        var fresh = await db.Users.AsNoTracking().Where(u => u.Id == user.Id)
            .Select(u => new { u.Suspended, u.DeletedAt, u.LockedUntil, u.PortalRole, u.Login }).SingleAsync(ct);
        if (fresh.Suspended || fresh.DeletedAt is not null)
        {
            return await FinishAsync(db, new SignInOutcome(false, SignInResults.Suspended, user.Id), client, ct);
        }
        if (fresh.LockedUntil is { } lockedNow && lockedNow > now)
        {
            return await FinishAsync(db, new SignInOutcome(false, SignInResults.LockedOut, user.Id, LockedUntil: lockedNow), client, ct);
        }
        await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(u => u
            .SetProperty(x => x.FailedSignins, 0)
            .SetProperty(x => x.LockedUntil, (DateTimeOffset?)null)
            .SetProperty(x => x.PasswordHash, x => rehash ?? x.PasswordHash), ct);
        audit.Add(db, user.Id, AuditActions.SignIn, result == SignInResults.SuccessRecoveryCode ? "recovery code" : "authenticator code", client);
        if (result == SignInResults.SuccessRecoveryCode) audit.Add(db, user.Id, AuditActions.RecoveryCodeUsed, null, client);
        Log.SignInSucceeded(logger, user.Id, result == SignInResults.Success ? "totp" : "recovery code");
        return await FinishAsync(db, new SignInOutcome(true, result, user.Id, fresh.Login, fresh.PortalRole), client, ct);
    }

    /// <summary>Counts a failure atomically; the threshold-th consecutive failure locks the account.</summary>
    private async Task<SignInOutcome> FailAsync(TokenGateDbContext db, UserRow user, string result, ClientInfo client, CancellationToken ct)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        var lockUntil = now + o.LockoutDuration;
        // Old values on the right-hand side: an expired lock starts the count again from one.
        var rows = await db.Database.SqlQuery<LockState>($"""
            UPDATE users SET
                failed_signins = CASE WHEN locked_until IS NOT NULL AND locked_until <= {now} THEN 1 ELSE failed_signins + 1 END,
                locked_until = CASE
                    WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= {now} THEN 1 ELSE failed_signins + 1 END) >= {o.LockoutThreshold}
                         AND (locked_until IS NULL OR locked_until <= {now}) THEN {lockUntil}
                    WHEN locked_until <= {now} THEN NULL
                    ELSE locked_until END
            WHERE id = {user.Id}
            RETURNING locked_until AS "LockedUntil", failed_signins = {o.LockoutThreshold} AS "JustLocked"
            """).ToListAsync(ct);
        var state = rows.Count == 1 ? rows[0] : new LockState();
        if (state.LockedUntil is { } lu && lu > now)
        {
            if (state.JustLocked)
            {
                Log.LockedOut(logger, user.Id, lu);
                audit.Add(db, user.Id, AuditActions.LockedOut, null, client);
            }
            return await FinishAsync(db, new SignInOutcome(false, result, user.Id, LockedUntil: lu), client, ct);
        }
        return await FinishAsync(db, new SignInOutcome(false, result, user.Id), client, ct);
    }

    private async Task<SignInOutcome> FinishAsync(TokenGateDbContext db, SignInOutcome outcome, ClientInfo client, CancellationToken ct)
    {
        db.SigninEvents.Add(new SigninEventRow
        {
            UserId = outcome.UserId,
            CreatedAt = time.GetUtcNow(),
            Ip = client.Ip,
            UserAgent = client.UserAgent,
            Result = outcome.Result,
        });
        await db.SaveChangesAsync(ct);
        if (!outcome.Succeeded) Log.SignInRefused(logger, outcome.UserId, outcome.Result);
        return outcome;
    }

    private sealed class LockState
    {
        public DateTimeOffset? LockedUntil { get; set; }
        public bool JustLocked { get; set; }
    }
}
