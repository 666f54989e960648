using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Keys;

/// <summary>
/// The portal's side of key management. The portal never issues key material: it lists keys (prefixes and
/// figures only), writes requests that the operator carries out, and opens the one-time reveal of a key the
/// operator encrypted to the request's ephemeral public key. Its private key is stored protected by the
/// portal's data protection and forgotten once the reveal is opened or expires.
/// </summary>
public sealed partial class KeyRequestClient(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    IDataProtectionProvider dataProtection,
    TimeProvider time,
    ILogger<KeyRequestClient> logger)
{
    private const int MaxPendingPerUser = 10;
    private const int MaxDescriptionLength = 200;
    private readonly IDataProtector _protector = dataProtection.CreateProtector("Gateway.Portal.Keys.Reveal.v1");

    /// <summary>
    /// The user's live keys with their figures, oldest first. Figures come from the daily roll-ups and
    /// <c>api_keys.last_used_at</c>, both kept by the ledger writer in the transaction that adds the usage rows,
    /// so the page costs the same for a key with a million requests as for a new one.
    /// </summary>
    public async Task<IReadOnlyList<KeyListItem>> ListAsync(Guid userId, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var keys = await db.ApiKeys.AsNoTracking().Where(k => k.UserId == userId && k.DeletedAt == null).OrderBy(k => k.CreatedAt).ThenBy(k => k.Name).ToListAsync(ct);
        if (keys.Count == 0) return [];
        var ids = keys.Select(k => k.Id).ToList();
        var live = await db.ApiKeyVersions.AsNoTracking().Where(v => ids.Contains(v.ApiKeyId) && v.RevokedAt == null)
            .Select(v => new { v.ApiKeyId, v.Version, v.ExpiresAt }).ToListAsync(ct);
        var usage = await db.UsageDaily.AsNoTracking().Where(u => u.UserId == userId && u.ApiKeyId != null && ids.Contains(u.ApiKeyId.Value))
            .GroupBy(u => u.ApiKeyId!.Value)
            .Select(g => new
            {
                Id = g.Key,
                Requests = g.Sum(u => u.Requests),
                Tokens = g.Sum(u => u.InputTokens + u.CachedInputTokens + u.CacheWriteTokens + u.OutputTokens),
                Spend = g.Sum(u => u.Cost),
            }).ToDictionaryAsync(x => x.Id, ct);
        var pending = await db.KeyRequests.AsNoTracking().Where(r => r.UserId == userId && r.Status == KeyRequestStatus.Pending && r.ApiKeyId != null)
            .Select(r => new { r.ApiKeyId, r.Kind }).ToListAsync(ct);

        return keys.Select(k =>
        {
            var versions = live.Where(v => v.ApiKeyId == k.Id).ToList();
            var issued = versions.Any(v => v.Version == k.CurrentVersion);
            var state = k.Disabled ? KeyState.Disabled
                : k.UserDisabled ? KeyState.DisabledByOwner
                : k.ExpiresAt <= now ? KeyState.Expired
                : !issued ? KeyState.NotIssued
                : KeyState.Active;
            usage.TryGetValue(k.Id, out var u);
            return new KeyListItem
            {
                Id = k.Id,
                Name = k.Name,
                Prefix = k.KeyPrefix,
                Description = k.Description,
                State = state,
                PortalCreated = k.PortalCreated,
                CreatedAt = k.CreatedAt,
                LastUsedAt = k.LastUsedAt,
                Requests = u?.Requests ?? 0,
                Tokens = u?.Tokens ?? 0,
                Spend = u?.Spend ?? 0m,
                ExpiresAt = k.ExpiresAt,
                PreviousVersionGraceEndsAt = versions.Where(v => v.Version != k.CurrentVersion && v.ExpiresAt > now).Max(v => v.ExpiresAt),
                PendingRequest = pending.FirstOrDefault(p => p.ApiKeyId == k.Id)?.Kind,
            };
        }).ToList();
    }

    /// <summary>How many keys the user has and may have.</summary>
    public async Task<KeyAllowance> AllowanceAsync(Guid userId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == userId, ct);
        if (user is null || user.DeletedAt is not null) return new KeyAllowance(0, 0, 0, Suspended: true);
        var spec = JsonSerializer.Deserialize<UserQuotaSpec>(user.Spec, TokenGateJson.Options);
        var keys = await db.ApiKeys.CountAsync(k => k.UserId == userId && k.DeletedAt == null, ct);
        var creating = await db.KeyRequests.CountAsync(r => r.UserId == userId && r.Status == KeyRequestStatus.Pending && r.Kind == KeyRequestKinds.Create, ct);
        return new KeyAllowance(keys, creating, spec?.MaxKeys, user.Suspended);
    }

    /// <summary>Asks the operator to create a key; refused at once when the user is at maxKeys or the input is invalid.</summary>
    public async Task<KeyRequestSubmission> RequestCreateAsync(Guid userId, string? description, DateTimeOffset? expiresAt, IReadOnlyList<string> allowedModels, CancellationToken ct)
    {
        description = string.IsNullOrWhiteSpace(description) ? null : description.Trim();
        if (description is { Length: > MaxDescriptionLength }) return KeyRequestSubmission.Refused("The description can be at most {0} characters.", MaxDescriptionLength);
        if (expiresAt is { } e && e <= time.GetUtcNow()) return KeyRequestSubmission.Refused("The expiry date must be in the future.");
        var allowance = await AllowanceAsync(userId, ct);
        if (allowance.Suspended) return KeyRequestSubmission.Refused("Your account is suspended, so you cannot create keys.");
        if (!allowance.CanCreate)
        {
            return KeyRequestSubmission.Refused("You have {0} key(s), the most your quota allows ({1}). Delete a key first.", allowance.Keys + allowance.PendingCreates, allowance.MaxKeys!);
        }
        var parameters = new KeyRequestParameters { Description = description, ExpiresAt = expiresAt, AllowedModels = [.. allowedModels] };
        return await InsertAsync(userId, KeyRequestKinds.Create, null, parameters, ct);
    }

    /// <summary>Asks the operator to rotate, disable, enable or delete one of the user's keys.</summary>
    public async Task<KeyRequestSubmission> RequestChangeAsync(Guid userId, Guid apiKeyId, string kind, CancellationToken ct)
    {
        if (kind is not (KeyRequestKinds.Rotate or KeyRequestKinds.Disable or KeyRequestKinds.Enable or KeyRequestKinds.Delete))
        {
            return KeyRequestSubmission.Refused("Unknown action.");
        }
        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            var key = await db.ApiKeys.AsNoTracking().SingleOrDefaultAsync(k => k.Id == apiKeyId && k.UserId == userId && k.DeletedAt == null, ct);
            if (key is null) return KeyRequestSubmission.Refused("That key does not exist (or is not yours).");
            if (kind == KeyRequestKinds.Delete && !key.PortalCreated)
            {
                return KeyRequestSubmission.Refused("This key is declared in GitOps, so it cannot be deleted from the portal. You can rotate or disable it; ask your platform team to remove it.");
            }
            var same = await db.KeyRequests.AsNoTracking()
                .Where(r => r.UserId == userId && r.ApiKeyId == apiKeyId && r.Kind == kind && r.Status == KeyRequestStatus.Pending)
                .Select(r => (Guid?)r.Id).FirstOrDefaultAsync(ct);
            // A double submit (back button, second click) joins the request already waiting.
            if (same is not null) return new KeyRequestSubmission(same);
        }
        return await InsertAsync(userId, kind, apiKeyId, new KeyRequestParameters(), ct);
    }

    private async Task<KeyRequestSubmission> InsertAsync(Guid userId, string kind, Guid? apiKeyId, KeyRequestParameters parameters, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var waiting = await db.KeyRequests.CountAsync(r => r.UserId == userId && r.Status == KeyRequestStatus.Pending, ct);
        if (waiting >= MaxPendingPerUser) return KeyRequestSubmission.Refused("You have too many requests waiting; try again in a minute.");
        var row = new KeyRequestRow
        {
            Id = Guid.NewGuid(),
            UserId = userId,
            ApiKeyId = apiKeyId,
            Kind = kind,
            Parameters = JsonSerializer.Serialize(parameters, TokenGateJson.Options),
            Status = KeyRequestStatus.Pending,
            CreatedAt = time.GetUtcNow(),
        };
        if (KeyRequestKinds.Reveals(kind))
        {
            var (publicKey, privateKey) = KeyRevealCipher.CreateKeyPair();
            row.RevealPublicKey = Convert.ToBase64String(publicKey);
            row.RevealPrivateKey = Convert.ToBase64String(_protector.Protect(privateKey));
            Array.Clear(privateKey);
        }
        db.KeyRequests.Add(row);
        // The insert trigger notifies the operator (pg_notify on commit).
        await db.SaveChangesAsync(ct);
        LogRequested(logger, kind, row.Id);
        return new KeyRequestSubmission(row.Id);
    }

    /// <summary>The state of one of the user's requests (for the Keys page after an action).</summary>
    public async Task<KeyRequestRow?> GetRequestAsync(Guid userId, Guid requestId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.KeyRequests.AsNoTracking().SingleOrDefaultAsync(r => r.Id == requestId && r.UserId == userId, ct);
    }

    [LoggerMessage(500, LogLevel.Information, "Key {Kind} request {RequestId} submitted")]
    private static partial void LogRequested(ILogger logger, string kind, Guid requestId);
}
