using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Operator.Reconcilers;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Operator.KeyRequests;

/// <summary>
/// Carries out portal key requests. Each request is claimed with <c>SELECT … FOR UPDATE SKIP LOCKED</c> in a
/// transaction that also records its outcome (and the encrypted reveal), so a request completes exactly once:
/// a racing processor skips it, and if this one stops half-way the claim is released and the request is done
/// again by the next leader. Creating is idempotent (the key name derives from the request id); a repeated
/// rotation after such a crash issues one extra version, whose predecessor still lives out its grace period.
/// </summary>
public sealed partial class KeyRequestProcessor(
    NpgsqlDataSource dataSource,
    IDbContextFactory<TokenGateDbContext> dbFactory,
    TokenGateReconciler reconciler,
    IPortalKeyStore store,
    KeyHasher hasher,
    TimeProvider time,
    ILogger<KeyRequestProcessor> logger)
{
    private const int MaxDescriptionLength = 200;
    private const int MaxAllowedModels = 50;

    private sealed record Claimed(Guid Id, Guid UserId, Guid? ApiKeyId, string Kind, string Parameters, string? RevealPublicKey);

    private sealed record Outcome(string? Error, Guid? ApiKeyId, string? Plaintext)
    {
        public static Outcome Fail(string error) => new(error, null, null);
    }

    /// <summary>Completes pending requests until none is left; returns how many this call completed.</summary>
    public async Task<int> ProcessPendingAsync(CancellationToken cancellationToken)
    {
        var n = 0;
        while (await ProcessOneAsync(cancellationToken)) n++;
        return n;
    }

    /// <summary>Claims and completes the oldest pending request; false when there is none (or all are claimed).</summary>
    public async Task<bool> ProcessOneAsync(CancellationToken cancellationToken)
    {
        await using var conn = await dataSource.OpenConnectionAsync(cancellationToken);
        await using var tx = await conn.BeginTransactionAsync(cancellationToken);
        Claimed? req = null;
        await using (var claim = new NpgsqlCommand("""
            SELECT id, user_id, api_key_id, kind, parameters::text, reveal_public_key FROM key_requests
            WHERE status = 'pending' ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
            """, conn, tx))
        await using (var r = await claim.ExecuteReaderAsync(cancellationToken))
        {
            if (await r.ReadAsync(cancellationToken))
            {
                req = new Claimed(r.GetGuid(0), r.GetGuid(1), r.IsDBNull(2) ? null : r.GetGuid(2), r.GetString(3), r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5));
            }
        }
        if (req is null) return false;

        Outcome outcome;
        try
        {
            outcome = await store.RunExclusiveAsync(() => ExecuteAsync(req, cancellationToken), cancellationToken);
        }
        catch (KeyRequestRejectedException e)
        {
            outcome = Outcome.Fail(e.Message);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogRequestFailed(logger, req.Kind, req.Id, e);
            outcome = Outcome.Fail("The operator could not complete the request. Try again in a minute; if it keeps failing, tell your platform team.");
        }

        var now = time.GetUtcNow();
        if (outcome.Plaintext is { } plaintext)
        {
            var ciphertext = KeyRevealCipher.Encrypt(Convert.FromBase64String(req.RevealPublicKey!), plaintext, req.Id);
            await using var reveal = new NpgsqlCommand(
                "INSERT INTO key_reveals (request_id, ciphertext, created_at, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING", conn, tx);
            reveal.Parameters.Add(new NpgsqlParameter { Value = req.Id });
            reveal.Parameters.Add(new NpgsqlParameter { Value = ciphertext, NpgsqlDbType = NpgsqlDbType.Bytea });
            reveal.Parameters.Add(new NpgsqlParameter { Value = now });
            reveal.Parameters.Add(new NpgsqlParameter { Value = now + KeyRequestContract.RevealLifetime });
            await reveal.ExecuteNonQueryAsync(cancellationToken);
        }
        await using (var done = new NpgsqlCommand("""
            UPDATE key_requests SET status = $2, error = $3, result_api_key_id = $4, completed_at = $5,
                reveal_private_key = CASE WHEN $2 = 'failed' THEN NULL ELSE reveal_private_key END
            WHERE id = $1
            """, conn, tx))
        {
            done.Parameters.Add(new NpgsqlParameter { Value = req.Id });
            done.Parameters.Add(new NpgsqlParameter { Value = outcome.Error is null ? KeyRequestStatus.Done : KeyRequestStatus.Failed });
            done.Parameters.Add(new NpgsqlParameter { Value = (object?)outcome.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            done.Parameters.Add(new NpgsqlParameter { Value = (object?)outcome.ApiKeyId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Uuid });
            done.Parameters.Add(new NpgsqlParameter { Value = now });
            await done.ExecuteNonQueryAsync(cancellationToken);
        }
        await tx.CommitAsync(cancellationToken);
        if (outcome.Error is null) LogRequestDone(logger, req.Kind, req.Id);
        else LogRequestRefused(logger, req.Kind, req.Id, outcome.Error);
        return true;
    }

    /// <summary>Deletes reveals nobody opened in time and forgets the private keys that can no longer be used.</summary>
    public async Task<int> CleanupAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var cmd = dataSource.CreateCommand("""
            WITH gone AS (DELETE FROM key_reveals WHERE expires_at <= $1 RETURNING request_id)
            UPDATE key_requests SET reveal_private_key = NULL
            WHERE reveal_private_key IS NOT NULL AND (id IN (SELECT request_id FROM gone) OR (status <> 'pending' AND completed_at <= $2))
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = now });
        cmd.Parameters.Add(new NpgsqlParameter { Value = now - KeyRequestContract.RevealLifetime });
        return await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    private async Task<Outcome> ExecuteAsync(Claimed req, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == req.UserId, ct);
        if (user is null || user.DeletedAt is not null) return Outcome.Fail("Your account no longer exists.");
        if (user.Suspended) return Outcome.Fail("Your account is suspended, so its keys cannot be changed.");
        if (req.Kind == KeyRequestKinds.Create) return await CreateAsync(db, user, req, ct);

        var row = await db.ApiKeys.SingleOrDefaultAsync(k => k.Id == req.ApiKeyId, ct);
        if (row is null || row.UserId != user.Id || row.DeletedAt is not null) return Outcome.Fail("The key no longer exists.");
        var ak = await store.GetAsync(row.Namespace, row.Name, ct);
        if (ak is null || ak.Metadata.DeletionTimestamp is not null) return Outcome.Fail("The key no longer exists.");

        switch (req.Kind)
        {
            case KeyRequestKinds.Rotate:
            {
                var (_, status, key) = await reconciler.ReconcileApiKeyAsync(ak, store.Source, rotate: true, ct);
                await store.Source.WriteStatusAsync(ak.Kind, ak.Metadata, status, ct);
                return await IssuedAsync(row.Id, key, status, ct);
            }
            case KeyRequestKinds.Disable or KeyRequestKinds.Enable:
            {
                var disable = req.Kind == KeyRequestKinds.Disable;
                // Portal-created keys are the portal's to edit; a GitOps key's spec is not, so its owner's switch lives in PostgreSQL.
                if (store.IsPortalCreated(ak)) ak = await store.SetDisabledAsync(ak, disable, ct);
                row.UserDisabled = disable && !store.IsPortalCreated(ak);
                await db.SaveChangesAsync(ct);
                var (_, status) = await reconciler.ReconcileApiKeyAsync(ak, store.Source, ct);
                await store.Source.WriteStatusAsync(ak.Kind, ak.Metadata, status, ct);
                return new Outcome(null, row.Id, null);
            }
            case KeyRequestKinds.Delete:
                if (!store.IsPortalCreated(ak))
                {
                    return Outcome.Fail("This key is declared in GitOps, so it cannot be deleted from the portal. You can rotate or disable it; ask your platform team to remove it.");
                }
                await store.DeleteAsync(ak, ct);
                return new Outcome(null, row.Id, null);
            default:
                return Outcome.Fail($"Unknown request kind '{req.Kind}'.");
        }
    }

    private async Task<Outcome> CreateAsync(TokenGateDbContext db, UserRow user, Claimed req, CancellationToken ct)
    {
        var p = JsonSerializer.Deserialize<KeyRequestParameters>(req.Parameters, TokenGateJson.Options) ?? new KeyRequestParameters();
        var now = time.GetUtcNow();
        var description = p.Description?.Trim();
        if (description is { Length: > MaxDescriptionLength }) return Outcome.Fail($"The description is longer than {MaxDescriptionLength} characters.");
        if (p.ExpiresAt is { } exp && exp <= now) return Outcome.Fail("The expiry date is in the past.");
        var models = p.AllowedModels.Select(m => m.Trim()).Where(m => m.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        if (models.Count > MaxAllowedModels || models.Any(m => m.Length > 200)) return Outcome.Fail($"List at most {MaxAllowedModels} model patterns of up to 200 characters.");

        var name = KeyName(user.Name, req.Id);
        var existing = await store.GetAsync(user.Namespace, name, ct);
        if (existing is not null && (existing.Spec.Owner != user.Name || !store.IsPortalCreated(existing)
            || existing.Metadata.Annotations?.GetValueOrDefault(KeyRequestContract.RequestAnnotation) != req.Id.ToString()))
        {
            return Outcome.Fail("The generated key name is already taken; try again.");
        }
        if (existing is null)
        {
            // maxKeys is decided here, by the only issuer; the portal's check is a courtesy.
            var spec = JsonSerializer.Deserialize<UserQuotaSpec>(user.Spec, TokenGateJson.Options);
            var count = await db.ApiKeys.CountAsync(k => k.UserId == user.Id && k.DeletedAt == null, ct);
            if (spec?.MaxKeys is int max && count >= max)
            {
                return Outcome.Fail($"You already have {count} key(s), the most your quota allows ({max}). Delete a key first.");
            }
        }
        var ak = existing ?? await store.CreateAsync(new ApiKey
        {
            Metadata = new ObjectMeta
            {
                Name = name,
                Namespace = user.Namespace,
                Labels = new() { [KeyRequestContract.CreatedByLabel] = KeyRequestContract.CreatedByPortal },
                Annotations = new() { [KeyRequestContract.RequestAnnotation] = req.Id.ToString() },
            },
            Spec = new ApiKeySpec { Owner = user.Name, Description = description, ExpiresAt = p.ExpiresAt, AllowedModels = models },
        }, ct);
        var (_, status, key) = await reconciler.ReconcileApiKeyAsync(ak, store.Source, rotate: false, ct);
        await store.Source.WriteStatusAsync(ak.Kind, ak.Metadata, status, ct);
        var id = await db.ApiKeys.Where(k => k.Namespace == user.Namespace && k.Name == name).Select(k => (Guid?)k.Id).SingleOrDefaultAsync(ct);
        return await IssuedAsync(id, key, status, ct);
    }

    /// <summary>The key the reconcile left current (issued then, or read from its Secret under the key's lock), checked against PostgreSQL.</summary>
    private async Task<Outcome> IssuedAsync(Guid? apiKeyId, string? plaintext, ApiKeyStatus status, CancellationToken ct)
    {
        if (plaintext is null || !ApiKeyFormat.IsWellFormed(plaintext) || apiKeyId is null)
        {
            var why = Gateway.Kubernetes.Runtime.Conditions.Find(status.Conditions, "Ready")?.Message ?? "no key was issued.";
            return Outcome.Fail("The key could not be issued: " + why);
        }
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var hash = hasher.Hash(plaintext);
        var current = await db.ApiKeyVersions.AnyAsync(v => v.ApiKeyId == apiKeyId && v.KeyHash == hash && v.RevokedAt == null, ct);
        if (!current) return Outcome.Fail("The key could not be issued: its Secret does not hold the current version.");
        return new Outcome(null, apiKeyId, plaintext);
    }

    /// <summary>"&lt;user&gt;-&lt;8 hex of the request id&gt;": a DNS-1123 name that a retried request finds again.</summary>
    public static string KeyName(string userQuotaName, Guid requestId)
    {
        var user = userQuotaName.Length > 40 ? userQuotaName[..40].TrimEnd('-', '.') : userQuotaName;
        return user + "-" + requestId.ToString("N")[..8];
    }

    [LoggerMessage(400, LogLevel.Information, "Completed portal {Kind} request {RequestId}")]
    private static partial void LogRequestDone(ILogger logger, string kind, Guid requestId);

    [LoggerMessage(401, LogLevel.Information, "Refused portal {Kind} request {RequestId}: {Reason}")]
    private static partial void LogRequestRefused(ILogger logger, string kind, Guid requestId, string reason);

    [LoggerMessage(402, LogLevel.Error, "Portal {Kind} request {RequestId} failed")]
    private static partial void LogRequestFailed(ILogger logger, string kind, Guid requestId, Exception e);
}
