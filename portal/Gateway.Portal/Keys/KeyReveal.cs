using System.Security.Cryptography;
using Gateway.Core.Keys;
using Gateway.Core.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Keys;

/// <summary>
/// Opens a one-time reveal: decrypts the key the operator issued for a request, and in the same transaction
/// deletes the ciphertext and forgets the private key, so a second view (or a second replica) finds nothing.
/// A reveal left unopened for <see cref="KeyRequestContract.RevealLifetime"/> is deleted instead.
/// </summary>
public sealed partial class KeyReveal(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    IDataProtectionProvider dataProtection,
    TimeProvider time,
    ILogger<KeyReveal> logger)
{
    private readonly IDataProtector _protector = dataProtection.CreateProtector("Gateway.Portal.Keys.Reveal.v1");

    public async Task<RevealResult> OpenAsync(Guid userId, Guid requestId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // The row lock makes two simultaneous views (two tabs, two replicas) take turns: only the first sees the key.
        var request = await db.KeyRequests
            .FromSqlInterpolated($"SELECT * FROM key_requests WHERE id = {requestId} AND user_id = {userId} FOR UPDATE")
            .SingleOrDefaultAsync(ct);
        if (request is null) return new RevealResult(RevealState.NotFound);
        string? keyName = request.ResultApiKeyId is { } kid
            ? await db.ApiKeys.Where(k => k.Id == kid).Select(k => k.Name).SingleOrDefaultAsync(ct)
            : null;
        if (request.Status == KeyRequestStatus.Pending) return new RevealResult(RevealState.Pending, request.Kind);
        if (request.Status == KeyRequestStatus.Failed) return new RevealResult(RevealState.Failed, request.Kind, Error: request.Error);
        if (!KeyRequestKinds.Reveals(request.Kind)) return new RevealResult(RevealState.Done, request.Kind, KeyName: keyName);
        if (request.RevealedAt is not null) return new RevealResult(RevealState.AlreadyShown, request.Kind, KeyName: keyName);

        var reveal = await db.KeyReveals.SingleOrDefaultAsync(r => r.RequestId == requestId, ct);
        if (reveal is null || reveal.ExpiresAt <= now || request.RevealPrivateKey is null)
        {
            if (reveal is not null) db.KeyReveals.Remove(reveal);
            request.RevealPrivateKey = null;
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            return new RevealResult(RevealState.Expired, request.Kind, KeyName: keyName);
        }

        string key;
        byte[]? privateKey = null;
        try
        {
            privateKey = _protector.Unprotect(Convert.FromBase64String(request.RevealPrivateKey));
            key = KeyRevealCipher.Decrypt(privateKey, reveal.Ciphertext, request.Id);
        }
        catch (CryptographicException e)
        {
            // E.g. the data-protection key ring was lost: the key cannot be shown; rotating again is the remedy.
            LogUndecryptable(logger, requestId, e.GetType().Name);
            key = "";
        }
        finally
        {
            if (privateKey is not null) CryptographicOperations.ZeroMemory(privateKey);
        }
        db.KeyReveals.Remove(reveal);
        request.RevealPrivateKey = null;
        request.RevealedAt = now;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return key.Length == 0
            ? new RevealResult(RevealState.Failed, request.Kind, Error: "The key could not be decrypted. Rotate the key to get a new one.")
            : new RevealResult(RevealState.Revealed, request.Kind, key, KeyName: keyName);
    }

    [LoggerMessage(510, LogLevel.Warning, "The reveal of request {RequestId} could not be decrypted ({Error})")]
    private static partial void LogUndecryptable(ILogger logger, Guid requestId, string error);
}
