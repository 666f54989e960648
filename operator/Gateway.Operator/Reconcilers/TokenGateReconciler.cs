using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Core.Time;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Projection;
using Gateway.Operator.Sources;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Reconcilers;

/// <summary>Objects PostgreSQL holds as live, by "namespace/name".</summary>
public sealed record LiveInventory(IReadOnlyList<string> Users, IReadOnlyList<string> Upstreams, IReadOnlyList<(string Key, string SecretName)> ApiKeys);

/// <summary>
/// The reconcile logic for all three kinds, shared by the file source and the Kubernetes source:
/// upserts PostgreSQL rows, issues and revokes keys, credits grants once, writes the Redis projection
/// and reports status. Every method is idempotent.
/// </summary>
public sealed class TokenGateReconciler(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    ProjectionWriter projection,
    KeyHasher hasher,
    IOptions<OperatorOptions> options,
    TimeProvider time,
    ILogger<TokenGateReconciler> logger,
    Telemetry.OperatorStateMetrics? metrics = null,
    OAuth.OAuthStateStore? oauthState = null,
    Telemetry.UpstreamHealthBoard? healthBoard = null)
{
    private static readonly TimeSpan DefaultGrace = TimeSpan.FromHours(24);
    /// <summary>oauth.refreshBefore when the spec leaves it out (the CRD's default).</summary>
    private static readonly TimeSpan DefaultRefreshBefore = TimeSpan.FromMinutes(5);
    private readonly OperatorOptions _options = options.Value;
    // One reconcile per key at a time: a portal request and the key's controller must not both issue a version.
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _keyLocks = new(StringComparer.Ordinal);

    // ---------------------------------------------------------------- UpstreamAccount

    /// <summary>Resolves credentials and returns the projection (the caller writes the full upstream list).</summary>
    public async Task<(UpstreamProjection? Projection, UpstreamAccountStatus Status)> ReconcileUpstreamAsync(UpstreamAccount ua, IResourceSource source, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var status = ua.Status ?? new UpstreamAccountStatus();
        var gen = ua.Metadata.Generation;
        var ns = ua.Metadata.Namespace ?? "default";
        var spec = ua.Spec;

        var problem = ValidateUpstream(spec);
        string? credential = null;
        string? refreshToken = null;
        DateTimeOffset? expiresAt = null;
        if (problem is null) (credential, expiresAt, problem, refreshToken) = await ResolveCredentialAsync(ns, spec.Credentials, source, ct);
        // With the OAuth refresher on, its state decides whether the token is usable (refused refresh, expiry).
        string? oauthNote = null;
        if (problem is null && spec.Credentials.Oauth is { } oauth && oauthState is not null)
        {
            var verdict = OAuth.OAuthCredentialStatus.Evaluate(await oauthState.GetOrEmptyAsync(ua.Key, ct), refreshToken, expiresAt, now, oauth.SecretRef.Name);
            problem = verdict.Problem;
            oauthNote = verdict.Note;
            status.LastRefreshAt = verdict.LastRefreshAt ?? status.LastRefreshAt;
        }

        await using (var db = await dbFactory.CreateDbContextAsync(ct))
        {
            var row = await db.UpstreamAccounts.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == ua.Metadata.Name, ct);
            if (row is null)
            {
                row = new UpstreamAccountRow { Id = Guid.NewGuid(), Namespace = ns, Name = ua.Metadata.Name, CreatedAt = now };
                db.UpstreamAccounts.Add(row);
            }
            row.Provider = spec.Provider;
            row.BaseUrl = spec.BaseUrl;
            row.Priority = spec.Priority;
            row.Weight = spec.Weight;
            row.Disabled = spec.Disabled;
            row.Spec = JsonSerializer.Serialize(spec, TokenGateJson.Options);
            row.Generation = gen ?? 0;
            row.UpdatedAt = now;
            row.DeletedAt = null;
            // For the portal's admin overview, which reads PostgreSQL only.
            row.TokenExpiresAt = expiresAt;
            row.LastError = problem?.Message ?? oauthNote;
            await db.SaveChangesAsync(ct);
        }

        status.TokenExpiresAt = expiresAt;
        metrics?.SetUpstream(ua.Key, spec.Disabled && problem is null ? null : problem is null, expiresAt);

        status.ObservedGeneration = gen;
        if (problem is not null)
        {
            Conditions.Set(status.Conditions, "CredentialsValid", Conditions.False, problem.Value.Reason, problem.Value.Message, gen, now);
            Conditions.Set(status.Conditions, "Ready", Conditions.False, problem.Value.Reason, problem.Value.Message, gen, now);
            status.LastError = problem.Value.Message;
            Log.NotReady(logger, ua.Kind, ua.Key, problem.Value.Reason, problem.Value.Message);
            return (null, status);
        }

        Conditions.Set(status.Conditions, "CredentialsValid", Conditions.True, "CredentialsResolved",
            oauthNote is null ? "Credentials were read from the referenced Secret." : "Credentials were read from the referenced Secret. " + oauthNote, gen, now);
        // Health as the leader last judged it from the proxies' cooldowns and recent requests (Telemetry/UpstreamHealthMonitor).
        if (healthBoard?.Get(ua.Key) is { } health)
        {
            Conditions.Set(status.Conditions, "Healthy", health.Status, health.Reason, health.Message, gen, now);
            status.CooldownUntil = health.CooldownUntil;
            if (health.Windows is { } totals)
            {
                status.Windows = UpstreamWindowStatuses.From(spec.Windows, totals);
                status.RequestsToday = totals.Of(WindowPeriods.OneDay).Requests;
                metrics?.SetWindowUsage(ua.Key, UpstreamWindowStatuses.UsageRatios(status.Windows));
            }
        }
        else if (Conditions.Find(status.Conditions, "Healthy") is null)
        {
            Conditions.Set(status.Conditions, "Healthy", Conditions.Unknown, "NoTrafficYet", "No requests have been forwarded yet.", gen, now);
        }
        Conditions.Set(status.Conditions, "Ready", spec.Disabled ? Conditions.False : Conditions.True,
            spec.Disabled ? "Disabled" : "Reconciled",
            spec.Disabled ? "The account is disabled and receives no traffic." : $"Serving {spec.Models.Count} model(s).", gen, now);
        status.LastError = oauthNote;

        var p = new UpstreamProjection
        {
            Name = ua.Key,
            Provider = spec.Provider,
            BaseUrl = spec.BaseUrl.TrimEnd('/'),
            Credential = credential,
            Models = spec.Models,
            Priority = spec.Priority,
            Weight = spec.Weight < 1 ? 1 : spec.Weight,
            Limits = spec.Limits,
            Labels = ua.Metadata.Labels ?? [],
            Disabled = spec.Disabled,
            OAuth = spec.Credentials.Oauth is not null,
            Headers = spec.Headers is { Count: > 0 } ? spec.Headers : null,
            Paths = spec.Paths is { Count: > 0 } ? spec.Paths : null,
            Windows = spec.Windows is { Count: > 0 } ? spec.Windows : null,
            TokenExpiresAt = expiresAt,
            RefreshBeforeSeconds = spec.Credentials.Oauth is { } o
                ? (int)Math.Min(int.MaxValue, GoDuration.Parse(o.RefreshBefore, DefaultRefreshBefore).TotalSeconds) : null,
            PriceVersion = $"ua:{ua.Key}@{gen ?? 0}",
        };
        return (p, status);
    }

    public async Task DeleteUpstreamAsync(string ns, string name, CancellationToken ct)
    {
        metrics?.RemoveUpstream(ns + "/" + name);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.UpstreamAccounts.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == name && x.DeletedAt == null, ct);
        if (row is null) return;
        row.DeletedAt = time.GetUtcNow();
        await db.SaveChangesAsync(ct);
        Log.Deleted(logger, "UpstreamAccount", $"{ns}/{name}");
    }

    public Task WriteUpstreamsAsync(IReadOnlyList<UpstreamProjection> upstreams, CancellationToken ct) => projection.WriteUpstreamsAsync(upstreams, ct);

    private static (string Reason, string Message)? ValidateUpstream(UpstreamAccountSpec spec)
    {
        if (Array.IndexOf(Providers.All, spec.Provider) < 0) return ("InvalidSpec", $"spec.provider '{spec.Provider}' is not one of {string.Join(", ", Providers.All)}.");
        if (!Uri.TryCreate(spec.BaseUrl, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https")) return ("InvalidSpec", "spec.baseUrl must be an absolute http(s) URL.");
        if (spec.Models.Count == 0) return ("InvalidSpec", "spec.models must list at least one model.");
        if ((spec.Credentials.ApiKeySecretRef is null) == (spec.Credentials.Oauth is null)) return ("InvalidSpec", "spec.credentials must set exactly one of apiKeySecretRef or oauth.");
        if (UpstreamRequestRules.HeadersProblem(spec.Headers) is { } headers) return ("InvalidSpec", headers);
        if (UpstreamRequestRules.PathsProblem(spec.Paths) is { } paths) return ("InvalidSpec", paths);
        if (spec.Provider == Providers.AzureOpenAI && spec.Paths is { Count: > 0 }) return ("InvalidSpec", "spec.paths cannot be used with azure-openai: its URLs follow the deployment.");
        if (UpstreamRequestRules.WindowsProblem(spec.Windows) is { } windows) return ("InvalidSpec", windows);
        return null;
    }

    private static async Task<(string?, DateTimeOffset?, (string Reason, string Message)?, string? RefreshToken)> ResolveCredentialAsync(string ns, UpstreamCredentials creds, IResourceSource source, CancellationToken ct)
    {
        if (creds.ApiKeySecretRef is { } r)
        {
            var secret = await source.GetSecretAsync(ns, r.Name, ct);
            if (secret is null) return (null, null, ("SecretNotFound", $"Secret '{r.Name}' was not found in namespace '{ns}'."), null);
            if (!secret.TryGetValue(r.Key, out var bytes) || bytes.Length == 0) return (null, null, ("SecretKeyMissing", $"Secret '{r.Name}' has no key '{r.Key}'."), null);
            return (Encoding.UTF8.GetString(bytes).Trim(), null, null, null);
        }
        var o = creds.Oauth!;
        var s = await source.GetSecretAsync(ns, o.SecretRef.Name, ct);
        if (s is null) return (null, null, ("SecretNotFound", $"Secret '{o.SecretRef.Name}' was not found in namespace '{ns}'."), null);
        foreach (var (_, value) in s)
        {
            try
            {
                using var doc = JsonDocument.Parse(value);
                if (doc.RootElement.TryGetProperty("access_token", out var at) && at.GetString() is { Length: > 0 } token)
                    return (token, OAuthExpiry.Read(doc.RootElement), null,
                        doc.RootElement.TryGetProperty("refresh_token", out var rt) && rt.ValueKind == JsonValueKind.String ? rt.GetString() : null);
            }
            catch (JsonException)
            {
                // Not the auth JSON; look at the next key.
            }
        }
        return (null, null, ("SecretKeyMissing", $"Secret '{o.SecretRef.Name}' holds no auth JSON with an access_token."), null);
    }

    // ---------------------------------------------------------------- UserQuota

    public async Task<(ReconcileOutcome Outcome, UserQuotaStatus Status)> ReconcileUserAsync(UserQuota uq, IResourceSource source, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var ns = uq.Metadata.Namespace ?? "default";
        var gen = uq.Metadata.Generation;
        var status = uq.Status ?? new UserQuotaStatus();
        var spec = uq.Spec;
        status.ObservedGeneration = gen;

        var invalid = spec.User.Name.Length == 0 ? "spec.user.name is required."
            : spec.User.Email.Length == 0 ? "spec.user.email is required."
            : spec.DiscountRate is <= 0 or > 1 ? "spec.discountRate must be in (0, 1]."
            : spec.Grants.Any(g => g.Id.Length == 0 || g.Amount < 0) ? "every grant needs an id and a non-negative amount."
            : spec.Grants.GroupBy(g => g.Id).Any(g => g.Count() > 1) ? "grant ids must be unique."
            : null;
        if (invalid is not null)
        {
            Conditions.Set(status.Conditions, "Ready", Conditions.False, "InvalidSpec", invalid, gen, now);
            Log.NotReady(logger, uq.Kind, uq.Key, "InvalidSpec", invalid);
            return (ReconcileOutcome.Done, status);
        }

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.Users.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == uq.Metadata.Name, ct);
        if (row is null)
        {
            row = new UserRow { Id = Guid.NewGuid(), Namespace = ns, Name = uq.Metadata.Name, CreatedAt = now };
            db.Users.Add(row);
        }
        row.Login = spec.User.Name;
        row.Email = spec.User.Email;
        row.DisplayName = spec.User.DisplayName;
        row.Suspended = spec.Suspended;
        row.PortalRole = spec.Portal?.Role == PortalRoles.Admin ? PortalRoles.Admin : PortalRoles.User;
        // jsonb comes back normalised (key order, spacing): compare as JSON so an unchanged spec is not a change.
        var specJson = JsonSerializer.Serialize(spec, TokenGateJson.Options);
        if (!SameJson(row.Spec, specJson)) row.Spec = specJson;
        row.Generation = gen ?? 0;
        row.DeletedAt = null;
        // Only a real change stamps updated_at: the status change feed reads it to find users the portal changed.
        if (db.ChangeTracker.HasChanges()) row.UpdatedAt = now;
        await db.SaveChangesAsync(ct);
        var userId = row.Id.ToString();

        // Grants: the unique (user_id, grant_id) index makes each credit happen once, ever.
        foreach (var g in spec.Grants)
        {
            var inserted = await db.Database.ExecuteSqlInterpolatedAsync($"""
                INSERT INTO ledger_entries (user_id, kind, amount, grant_id, reason)
                VALUES ({row.Id}, 'grant', {Money.RoundUsd(g.Amount)}, {g.Id}, {g.Reason})
                ON CONFLICT (user_id, grant_id) WHERE kind = 'grant' DO NOTHING
                """, ct);
            if (inserted == 1) Log.GrantCredited(logger, uq.Key, g.Id, g.Amount);
        }

        var grants = await db.LedgerEntries.Where(e => e.UserId == row.Id && e.Kind == LedgerKinds.Grant)
            .Select(e => new { e.GrantId, e.Amount }).ToListAsync(ct);
        var balance = await db.LedgerEntries.Where(e => e.UserId == row.Id).SumAsync(e => (decimal?)e.Amount, ct) ?? 0m;
        await projection.InitBalanceAsync(userId, Money.ToMicrosFloor(balance), grants.Select(g => g.GrantId!).ToList(), ct);
        foreach (var g in grants) await projection.CreditGrantAsync(userId, g.GrantId!, Money.ToMicrosFloor(g.Amount), ct);

        await projection.WriteUserAsync(new UserProjection
        {
            UserId = userId,
            Name = uq.Key,
            AllowedModels = spec.AllowedModels,
            Limits = spec.Limits,
            UpstreamSelector = spec.UpstreamSelector,
            DedicatedSelector = spec.DedicatedSelector,
            FallbackToShared = spec.FallbackToShared,
            DiscountRate = spec.DiscountRate,
            Budget = spec.Budget,
            Suspended = spec.Suspended,
        }, ct);

        // Invite: a one-time portal link in a Secret until the user has enrolled.
        if (row.Enrollment == "Invited")
        {
            var inviteName = uq.Metadata.Name + "-invite";
            var existing = await source.GetSecretAsync(ns, inviteName, ct);
            var token = existing is not null && existing.TryGetValue("INVITE_TOKEN", out var t) ? Encoding.UTF8.GetString(t) : null;
            if (token is null || row.InviteTokenHash != HashToken(token) || row.InviteExpiresAt < now)
            {
                token = Base64Url(RandomNumberGenerator.GetBytes(32));
                row.InviteTokenHash = HashToken(token);
                row.InviteExpiresAt = now + _options.InviteTtl;
                await db.SaveChangesAsync(ct);
                await source.ApplySecretAsync(new IssuedSecret(ns, inviteName, new Dictionary<string, string>
                {
                    ["INVITE_TOKEN"] = token,
                    ["INVITE_URL"] = $"{_options.PortalBaseUrl.TrimEnd('/')}/invite/{token}",
                }, Owner(uq)), ct);
                Log.InviteCreated(logger, uq.Key);
            }
        }
        else if (status.Enrollment != "Enrolled")
        {
            // The user enrolled in the portal since the last reconcile: the invite link is spent, drop its Secret.
            await source.DeleteSecretAsync(ns, uq.Metadata.Name + "-invite", ct);
        }

        // The same calendar the proxy's enforcement uses, so status and limits agree on the period.
        var period = BudgetCalendar.CurrentPeriod(spec.Budget, now);
        var periodStart = period?.Start ?? DateTimeOffset.MinValue;
        DateTimeOffset? periodEnd = period?.End;
        var spent = -(await db.LedgerEntries
            .Where(e => e.UserId == row.Id && (e.Kind == LedgerKinds.Consume || e.Kind == LedgerKinds.Expire) && e.CreatedAt >= periodStart)
            .SumAsync(e => (decimal?)e.Amount, ct) ?? 0m);
        status.Balance = balance;
        status.SpentThisPeriod = spent;
        status.PeriodResetsAt = periodEnd;
        status.KeyCount = await db.ApiKeys.CountAsync(k => k.UserId == row.Id && k.DeletedAt == null, ct);
        status.Enrollment = row.Enrollment;
        Conditions.Set(status.Conditions, "Ready", spec.Suspended ? Conditions.False : Conditions.True,
            spec.Suspended ? "Suspended" : "Reconciled",
            spec.Suspended ? "The user is suspended; every key is rejected." : "User, grants and limits are in effect.", gen, now);

        var outcome = periodEnd is { } end ? ReconcileOutcome.After(Clamp(end - now)) : ReconcileOutcome.Done;
        // An expired invite link is replaced by the next reconcile: be there when it expires.
        if (row.Enrollment == "Invited" && row.InviteExpiresAt is { } inviteEnd)
            outcome = ReconcileOutcome.Earliest(outcome, ReconcileOutcome.After(Clamp(inviteEnd - now)));
        return (outcome, status);
    }

    public async Task DeleteUserAsync(string ns, string name, IResourceSource source, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.Users.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == name && x.DeletedAt == null, ct);
        if (row is null) return;
        row.DeletedAt = time.GetUtcNow();
        row.InviteTokenHash = null;
        await db.SaveChangesAsync(ct);
        await projection.DeleteUserAsync(row.Id.ToString(), ct);
        await source.DeleteSecretAsync(ns, name + "-invite", ct);
        Log.Deleted(logger, "UserQuota", $"{ns}/{name}");
    }

    // ---------------------------------------------------------------- ApiKey

    public async Task<(ReconcileOutcome Outcome, ApiKeyStatus Status)> ReconcileApiKeyAsync(ApiKey ak, IResourceSource source, CancellationToken ct)
    {
        var (outcome, status, _) = await ReconcileApiKeyAsync(ak, source, rotate: false, ct);
        return (outcome, status);
    }

    /// <summary>
    /// Reconciles a key; with <paramref name="rotate"/> a new version is issued as the rotate annotation would
    /// (portal rotation requests). Serialised per key, so two callers never issue two versions. Also returns the
    /// plaintext of the version current at the end (issued now, or read from its Secret), for a one-time reveal;
    /// null when the key is not issued.
    /// </summary>
    public async Task<(ReconcileOutcome Outcome, ApiKeyStatus Status, string? CurrentKey)> ReconcileApiKeyAsync(ApiKey ak, IResourceSource source, bool rotate, CancellationToken ct)
    {
        var gate = _keyLocks.GetOrAdd(ak.Key, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct);
        try
        {
            return await ReconcileApiKeyLockedAsync(ak, source, rotate, ct);
        }
        finally
        {
            gate.Release();
        }
    }

    private async Task<(ReconcileOutcome Outcome, ApiKeyStatus Status, string? CurrentKey)> ReconcileApiKeyLockedAsync(ApiKey ak, IResourceSource source, bool rotate, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var ns = ak.Metadata.Namespace ?? "default";
        var gen = ak.Metadata.Generation;
        var status = ak.Status ?? new ApiKeyStatus();
        var spec = ak.Spec;
        status.ObservedGeneration = gen;

        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var owner = await db.Users.SingleOrDefaultAsync(u => u.Namespace == ns && u.Name == spec.Owner && u.DeletedAt == null, ct);
        if (owner is null)
        {
            var msg = $"UserQuota '{spec.Owner}' does not exist in namespace '{ns}'.";
            Conditions.Set(status.Conditions, "Ready", Conditions.False, "OwnerNotFound", msg, gen, now);
            Log.NotReady(logger, ak.Kind, ak.Key, "OwnerNotFound", msg);
            return (ReconcileOutcome.After(TimeSpan.FromSeconds(10)), status, null);
        }
        if (spec.DiscountRate is <= 0 or > 1)
        {
            Conditions.Set(status.Conditions, "Ready", Conditions.False, "InvalidSpec", "spec.discountRate must be in (0, 1].", gen, now);
            return (ReconcileOutcome.Done, status, null);
        }

        var row = await db.ApiKeys.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == ak.Metadata.Name, ct);
        if (row is null)
        {
            row = new ApiKeyRow { Id = Guid.NewGuid(), Namespace = ns, Name = ak.Metadata.Name, CreatedAt = now };
            db.ApiKeys.Add(row);
        }
        row.UserId = owner.Id;
        row.Description = spec.Description;
        row.Disabled = spec.Disabled;
        row.PortalCreated = ak.Metadata.Labels?.GetValueOrDefault(KeyRequestContract.CreatedByLabel) == KeyRequestContract.CreatedByPortal;
        row.ExpiresAt = spec.ExpiresAt;
        row.Spec = JsonSerializer.Serialize(spec, TokenGateJson.Options);
        row.Generation = gen ?? 0;
        row.UpdatedAt = now;
        row.DeletedAt = null;
        await db.SaveChangesAsync(ct);

        // maxKeys: the owner's oldest keys win.
        var ownerSpec = JsonSerializer.Deserialize<UserQuotaSpec>(owner.Spec, TokenGateJson.Options);
        if (ownerSpec?.MaxKeys is int maxKeys)
        {
            var older = await db.ApiKeys.CountAsync(k => k.UserId == owner.Id && k.DeletedAt == null && (k.CreatedAt < row.CreatedAt || (k.CreatedAt == row.CreatedAt && k.Id.CompareTo(row.Id) < 0)), ct);
            if (older >= maxKeys)
            {
                var msg = $"UserQuota '{spec.Owner}' allows at most {maxKeys} key(s).";
                await RevokeAllVersionsAsync(db, row, ak.Key, ct);
                await source.DeleteSecretAsync(ns, ak.EffectiveSecretName, ct);
                Conditions.Set(status.Conditions, "Ready", Conditions.False, "MaxKeysExceeded", msg, gen, now);
                Log.NotReady(logger, ak.Kind, ak.Key, "MaxKeysExceeded", msg);
                return (ReconcileOutcome.After(TimeSpan.FromSeconds(30)), status, null);
            }
        }

        var grace = GoDuration.Parse(spec.Rotation?.GracePeriod, DefaultGrace);
        var versions = await db.ApiKeyVersions.Where(v => v.ApiKeyId == row.Id).OrderBy(v => v.Version).ToListAsync(ct);
        var current = versions.LastOrDefault(v => v.RevokedAt == null && v.Version == row.CurrentVersion);

        // What the Secret holds decides whether a new version is needed: the plaintext exists only there.
        var secret = await source.GetSecretAsync(ns, ak.EffectiveSecretName, ct);
        string? secretKey = secret is not null && secret.TryGetValue("OPENAI_API_KEY", out var sk) ? Encoding.UTF8.GetString(sk) : null;
        var secretHash = secretKey is not null && ApiKeyFormat.IsWellFormed(secretKey) ? hasher.Hash(secretKey) : null;

        var rotateRequest = ak.Metadata.Annotations?.GetValueOrDefault(TokenGateApi.RotateAnnotation);
        var rotationDue = spec.Rotation?.Interval is { } iv && GoDuration.TryParse(iv, out var interval) && interval > TimeSpan.Zero && current is not null && current.CreatedAt + interval <= now;
        var rotateRequested = !string.IsNullOrEmpty(rotateRequest) && rotateRequest != row.LastRotateRequest;
        var disabled = spec.Disabled || row.UserDisabled;
        var currentKey = secretKey;

        if (current is null && secretHash is not null && versions.All(v => v.KeyHash != secretHash))
        {
            // Adopt the key the Secret already holds (e.g. PostgreSQL was rebuilt): workloads keep working.
            current = await AddVersionAsync(db, row, secretHash, ApiKeyFormat.DisplayPrefix(secretKey!), versions, now, ct);
        }
        else if (current is null || secretHash != current.KeyHash || rotateRequested || rotationDue || rotate)
        {
            var plaintext = ApiKeyFormat.Generate();
            currentKey = plaintext;
            var previous = current;
            current = await AddVersionAsync(db, row, hasher.Hash(plaintext), ApiKeyFormat.DisplayPrefix(plaintext), versions, now, ct);
            if (previous is not null)
            {
                previous.ExpiresAt = now + grace;
                await db.SaveChangesAsync(ct);
            }
            await source.ApplySecretAsync(new IssuedSecret(ns, ak.EffectiveSecretName, new Dictionary<string, string>
            {
                ["OPENAI_API_KEY"] = plaintext,
                ["OPENAI_BASE_URL"] = _options.PublicBaseUrl.TrimEnd('/') + "/v1",
                ["ANTHROPIC_API_KEY"] = plaintext,
                ["ANTHROPIC_BASE_URL"] = _options.PublicBaseUrl.TrimEnd('/'),
            }, Owner(ak)), ct);
            Log.KeyIssued(logger, ak.Key, current.Version, current.KeyPrefix);
        }
        if (rotateRequested)
        {
            row.LastRotateRequest = rotateRequest;
            await db.SaveChangesAsync(ct);
        }

        // The key's lifetime tokens and spend (tokenLimit, spendLimit) live in its owner's Redis shard: for a new owner (or
        // after Redis lost them) seed them from usage_log before the projection names that owner, so no admission under
        // the new owner creates them first and the key's limits never restart from zero.
        var ownerId = owner.Id.ToString();
        if (!await projection.HasKeyLifetimeAsync(ownerId, row.Id.ToString(), ct))
        {
            var used = await db.UsageLog.Where(u => u.ApiKeyId == row.Id).GroupBy(_ => 1)
                .Select(g => new
                {
                    Tokens = g.Sum(u => u.InputTokens + u.CachedInputTokens + u.CacheWriteTokens + u.OutputTokens),
                    Micros = g.Sum(u => Math.Ceiling(u.Cost * 1_000_000m)),
                })
                .SingleOrDefaultAsync(ct);
            await projection.SeedKeyLifetimeAsync(ownerId, row.Id.ToString(), used?.Tokens ?? 0, (long)(used?.Micros ?? 0m), ct);
        }

        // Project every live version; revoke the ones whose grace period ended.
        var outcome = ReconcileOutcome.Done;
        DateTimeOffset? previousExpiry = null;
        foreach (var v in versions)
        {
            if (v.RevokedAt is not null) continue;
            if (v.Id != current.Id && (v.ExpiresAt is null || v.ExpiresAt <= now))
            {
                v.RevokedAt = now;
                await db.SaveChangesAsync(ct);
                await projection.DeleteKeyAsync(v.KeyHash.Trim(), ct);
                Log.KeyRevoked(logger, ak.Key, v.Version);
                continue;
            }
            if (v.Id != current.Id)
            {
                previousExpiry = previousExpiry is null || v.ExpiresAt > previousExpiry ? v.ExpiresAt : previousExpiry;
                outcome = ReconcileOutcome.Earliest(outcome, ReconcileOutcome.After(Clamp(v.ExpiresAt!.Value - now)));
            }
            await projection.WriteKeyAsync(v.KeyHash.Trim(), new KeyProjection
            {
                KeyId = row.Id.ToString(),
                Name = ak.Key,
                Version = v.Version,
                UserId = owner.Id.ToString(),
                KeyPrefix = v.KeyPrefix,
                AllowedModels = spec.AllowedModels,
                Limits = spec.Limits,
                DiscountRate = spec.DiscountRate,
                ExpiresAt = spec.ExpiresAt,
                ValidUntil = v.Id == current.Id ? null : v.ExpiresAt,
                Disabled = disabled,
            }, ct);
        }
        if (spec.ExpiresAt is { } exp && exp > now) outcome = ReconcileOutcome.Earliest(outcome, ReconcileOutcome.After(Clamp(exp - now)));
        // rotation.interval: come back when the current version is due (nothing else would bring the key back then).
        if (spec.Rotation?.Interval is { } every && GoDuration.TryParse(every, out var rotateEvery) && rotateEvery > TimeSpan.Zero)
            outcome = ReconcileOutcome.Earliest(outcome, ReconcileOutcome.After(Clamp(current.CreatedAt + rotateEvery - now)));

        var usage = await db.UsageLog.Where(u => u.ApiKeyId == row.Id)
            .GroupBy(_ => 1)
            .Select(g => new { Requests = g.LongCount(), Tokens = g.Sum(u => u.InputTokens + u.CachedInputTokens + u.CacheWriteTokens + u.OutputTokens), Spend = g.Sum(u => u.Cost), LastUsed = g.Max(u => u.StartedAt) })
            .SingleOrDefaultAsync(ct);
        status.KeyPrefix = current.KeyPrefix;
        status.CurrentVersion = current.Version;
        status.PreviousVersionExpiresAt = previousExpiry;
        status.Requests = usage?.Requests ?? 0;
        status.Tokens = usage?.Tokens ?? 0;
        status.Spend = usage?.Spend ?? 0m;
        status.LastUsedAt = usage?.LastUsed;

        var (ready, reason, message) = spec.Disabled ? (Conditions.False, "Disabled", "The key is disabled.")
            : row.UserDisabled ? (Conditions.False, "DisabledByOwner", "The owner disabled the key in the portal.")
            : spec.ExpiresAt <= now ? (Conditions.False, "Expired", $"The key expired at {spec.ExpiresAt:O}.")
            : owner.Suspended ? (Conditions.False, "OwnerSuspended", $"UserQuota '{spec.Owner}' is suspended.")
            : (Conditions.True, "Issued", $"Key version {current.Version} is in Secret '{ak.EffectiveSecretName}'.");
        Conditions.Set(status.Conditions, "Ready", ready, reason, message, gen, now);
        return (outcome, status, currentKey);
    }

    public async Task DeleteApiKeyAsync(string ns, string name, string secretName, IResourceSource source, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.ApiKeys.SingleOrDefaultAsync(x => x.Namespace == ns && x.Name == name && x.DeletedAt == null, ct);
        if (row is not null)
        {
            await RevokeAllVersionsAsync(db, row, $"{ns}/{name}", ct);
            row.DeletedAt = time.GetUtcNow();
            await db.SaveChangesAsync(ct);
        }
        await source.DeleteSecretAsync(ns, secretName, ct);
        Log.Deleted(logger, "ApiKey", $"{ns}/{name}");
    }

    private async Task RevokeAllVersionsAsync(TokenGateDbContext db, ApiKeyRow row, string key, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var live = await db.ApiKeyVersions.Where(v => v.ApiKeyId == row.Id && v.RevokedAt == null).ToListAsync(ct);
        foreach (var v in live)
        {
            v.RevokedAt = now;
            await db.SaveChangesAsync(ct);
            await projection.DeleteKeyAsync(v.KeyHash.Trim(), ct);
            Log.KeyRevoked(logger, key, v.Version);
        }
        row.CurrentVersion = 0;
        await db.SaveChangesAsync(ct);
    }

    private static async Task<ApiKeyVersionRow> AddVersionAsync(TokenGateDbContext db, ApiKeyRow row, string hash, string prefix, List<ApiKeyVersionRow> versions, DateTimeOffset now, CancellationToken ct)
    {
        var v = new ApiKeyVersionRow
        {
            ApiKeyId = row.Id,
            Version = versions.Count == 0 ? 1 : versions.Max(x => x.Version) + 1,
            KeyHash = hash,
            KeyPrefix = prefix,
            CreatedAt = now,
        };
        db.ApiKeyVersions.Add(v);
        row.CurrentVersion = v.Version;
        row.KeyPrefix = prefix;
        await db.SaveChangesAsync(ct);
        versions.Add(v);
        return v;
    }

    // ---------------------------------------------------------------- inventory

    /// <summary>Live (not deleted) objects in PostgreSQL, so a source can delete what vanished while the operator was down.</summary>
    public async Task<LiveInventory> ListLiveAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var users = await db.Users.Where(x => x.DeletedAt == null).Select(x => x.Namespace + "/" + x.Name).ToListAsync(ct);
        var upstreams = await db.UpstreamAccounts.Where(x => x.DeletedAt == null).Select(x => x.Namespace + "/" + x.Name).ToListAsync(ct);
        var keys = await db.ApiKeys.Where(x => x.DeletedAt == null).Select(x => new { x.Namespace, x.Name, x.Spec }).ToListAsync(ct);
        return new LiveInventory(users, upstreams, keys.Select(k =>
        {
            var spec = JsonSerializer.Deserialize<ApiKeySpec>(k.Spec, TokenGateJson.Options);
            var secretName = string.IsNullOrEmpty(spec?.SecretName) ? k.Name + "-apikey" : spec.SecretName;
            return (k.Namespace + "/" + k.Name, secretName);
        }).ToList());
    }

    // ---------------------------------------------------------------- helpers

    private static OwnerReference Owner(IResource r) => new()
    {
        ApiVersion = TokenGateApi.ApiVersion,
        Kind = r.Kind,
        Name = r.Metadata.Name,
        Uid = r.Metadata.Uid ?? "",
        Controller = true,
        BlockOwnerDeletion = true,
    };

    /// <summary>SHA-256 of an invite token (tokens are single-use secrets; a fast hash suffices for 256-bit randoms).</summary>
    public static string HashToken(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool SameJson(string? stored, string fresh)
    {
        if (string.IsNullOrEmpty(stored)) return false;
        try
        {
            return JsonNode.DeepEquals(JsonNode.Parse(stored), JsonNode.Parse(fresh));
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static TimeSpan Clamp(TimeSpan t) => t < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : t > TimeSpan.FromHours(1) ? TimeSpan.FromHours(1) : t;
}
