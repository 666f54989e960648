using System.Collections.Concurrent;
using System.Text;
using Gateway.Core.Resources;
using Gateway.Core.Time;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.OAuth;

/// <summary>
/// Refreshes OAuth access tokens ahead of expiry (leader only). Per account and tick: is a refresh due (expiry
/// minus oauth.refreshBefore, a new tokengate.io/refresh annotation, or a pair waiting to be written)? Then, under
/// the account's Redis lease: re-read the Secret from the authority, call the token endpoint once, persist the new
/// pair (<see cref="OAuthPendingTokens"/>), write it to the Secret with the read's version as precondition, and only
/// then forget the pending copy. The projection follows the Secret (the reconciler reads it), so the new access
/// token is projected only after the Secret holds the pair. Failures back off exponentially and show in status.
/// </summary>
public sealed class OAuthRefresher(
    IOAuthAccountSource accounts,
    OAuthTokenClient client,
    OAuthRefreshLease lease,
    OAuthPendingTokens pending,
    OAuthStateStore states,
    IOptions<OAuthRefreshOptions> options,
    TimeProvider time,
    OAuthRefresherIdentity identity,
    ILogger<OAuthRefresher> logger) : BackgroundService
{
    private const int MaxWriteAttempts = 5;
    private readonly OAuthRefreshOptions _options = options.Value;
    // Pairs the provider issued that neither Redis nor the Secret took (both failing): retried from memory.
    private readonly ConcurrentDictionary<string, PendingTokens> _unwritten = new(StringComparer.Ordinal);
    private long _passes;

    /// <summary>Completed passes over the accounts (observability for tests).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PassAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.PassFailed(logger, e);
            }
            Interlocked.Increment(ref _passes);
            try
            {
                await Task.Delay(_options.CheckInterval, time, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One look at every OAuth account; refreshes the ones that are due.</summary>
    public async Task PassAsync(CancellationToken ct)
    {
        foreach (var ua in accounts.ListOAuthAccounts())
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                await CheckAsync(ua, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                Log.PassFailed(logger, e);
            }
        }
    }

    private async Task CheckAsync(UpstreamAccount ua, CancellationToken ct)
    {
        var o = ua.Spec.Credentials.Oauth!;
        var ns = ua.Metadata.Namespace ?? "default";
        var secret = await accounts.Secrets.ReadAsync(ns, o.SecretRef.Name, fresh: false, ct);
        if (secret is null || OAuthAuthFile.Find(secret.Data) is not { } auth) return;
        var state = await states.GetAsync(ua.Key, ct);
        var waiting = _unwritten.ContainsKey(ua.Key) || await pending.GetAsync(ua.Key, ct) is not null;
        if (!waiting && Due(ua, auth, state) is null && !await RejectedSinceRefreshAsync(ua, state, ct)) return;
        if (!waiting && InBackoff(ua, auth, state)) return;

        var fence = await lease.TryAcquireAsync(ua.Key, identity.Value, _options.LeaseDuration, ct);
        if (fence is null) return; // another replica is refreshing this account
        try
        {
            // From here on the refresh runs to its end even if leadership or the host stops: a rotated
            // refresh token must reach the Secret. Every step has its own timeout.
            await RefreshUnderLeaseAsync(ua, fence);
        }
        finally
        {
            await lease.ReleaseAsync(ua.Key, fence, CancellationToken.None);
        }
    }

    /// <summary>Why a refresh is due, or null.</summary>
    private string? Due(UpstreamAccount ua, OAuthAuthFile auth, OAuthAccountState state)
    {
        if (RefreshRequest(ua) is { } r && r != state.HandledRequest) return "requested";
        var refreshBefore = GoDuration.Parse(ua.Spec.Credentials.Oauth!.RefreshBefore, _options.DefaultRefreshBefore);
        // No expiry in the file: refresh once to learn it (a provider that sends no expires_in is refreshed on request only).
        if (auth.ExpiresAt is not { } expires) return state.LastRefreshAt is null ? "unknown expiry" : null;
        return time.GetUtcNow() >= expires - refreshBefore ? "expiring" : null;
    }

    /// <summary>
    /// True when a proxy saw the upstream reject the account's access token (401) after the last refresh: the token
    /// was revoked or expired early, so it is refreshed now instead of at refreshBefore. Backoff still applies, so a
    /// provider that keeps rejecting is not hammered.
    /// </summary>
    private async Task<bool> RejectedSinceRefreshAsync(UpstreamAccount ua, OAuthAccountState state, CancellationToken ct)
    {
        var requested = await states.RefreshRequestedAtAsync(ua.Key, ct);
        return requested is { } at && (state.LastRefreshAt is not { } last || at > last);
    }

    private bool InBackoff(UpstreamAccount ua, OAuthAuthFile auth, OAuthAccountState state)
    {
        // A new annotation value is tried at once; a new refresh token in the Secret clears the failure.
        if (RefreshRequest(ua) is { } r && r != state.HandledRequest) return false;
        return state.FailureFor(OAuthAuthFile.Fingerprint(auth.RefreshToken)) is not null && state.NextAttemptAt > time.GetUtcNow();
    }

    private static string? RefreshRequest(UpstreamAccount ua) =>
        ua.Metadata.Annotations?.GetValueOrDefault(TokenGateApi.RefreshAnnotation) is { Length: > 0 } v ? v : null;

    private async Task RefreshUnderLeaseAsync(UpstreamAccount ua, string fence)
    {
        var ct = CancellationToken.None;
        var o = ua.Spec.Credentials.Oauth!;
        var ns = ua.Metadata.Namespace ?? "default";
        var secretName = o.SecretRef.Name;
        var secret = await accounts.Secrets.ReadAsync(ns, secretName, fresh: true, ct);
        if (secret is null || OAuthAuthFile.Find(secret.Data) is not { } auth) return;

        // A pair issued earlier and not written yet goes first: refreshing again would burn it.
        var waiting = await pending.GetAsync(ua.Key, ct) ?? (_unwritten.TryGetValue(ua.Key, out var mem) ? mem : null);
        if (waiting is not null)
        {
            await RecoverAsync(ua, fence, secret, auth, waiting);
            return;
        }

        // Decide again on the authoritative copy: another replica may have refreshed a moment ago.
        var state = await states.GetAsync(ua.Key, ct);
        if (Due(ua, auth, state) is null && !await RejectedSinceRefreshAsync(ua, state, ct) || InBackoff(ua, auth, state)) return;
        var request = RefreshRequest(ua);
        var usedRefresh = auth.RefreshToken;
        if (usedRefresh is null)
        {
            await FailAsync(ua, auth, state, request, new TokenGrantFailure(true, "no_refresh_token",
                $"The auth JSON in Secret '{secretName}' has no refresh_token.", null));
            return;
        }

        var sentAt = time.GetUtcNow();
        var (grant, failure) = await client.RefreshAsync(new Uri(o.TokenUrl), o.ClientId, usedRefresh, _options.RequestTimeout, ct);
        if (failure is not null)
        {
            await FailAsync(ua, auth, state, request, failure);
            return;
        }

        // The provider has rotated the refresh token: from now on this pair exists only in this process.
        var acceptedAt = time.GetUtcNow();
        // The provider counts the lifetime from before its answer arrived: counting from the send errs on the early side.
        var expiresAt = grant!.ExpiresIn is { } e ? sentAt + e : (DateTimeOffset?)null;
        var json = auth.WithTokens(grant.AccessToken, grant.RefreshToken, grant.IdToken, expiresAt, acceptedAt);
        var record = new PendingTokens(auth.SecretKey, Encoding.UTF8.GetString(json), OAuthAuthFile.Fingerprint(usedRefresh),
            OAuthAuthFile.Fingerprint(grant.RefreshToken ?? usedRefresh), acceptedAt, expiresAt);
        _unwritten[ua.Key] = record;
        try
        {
            await pending.SaveAsync(ua.Key, record, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Redis is down: the copy in memory is what is left; the Secret write below is still tried.
            Log.WriteFailed(logger, ua.Key, secretName, ex);
        }
        await WritePendingAsync(ua, fence, secret, record, request, OAuthRefreshMetrics.Success);
    }

    /// <summary>A pending pair found before refreshing: write it if the Secret still holds the token it replaced.</summary>
    private async Task RecoverAsync(UpstreamAccount ua, string fence, VersionedSecret secret, OAuthAuthFile auth, PendingTokens waiting)
    {
        var current = OAuthAuthFile.Fingerprint(auth.RefreshToken);
        if (current == waiting.NewRefreshFingerprint)
        {
            await ForgetPendingAsync(ua.Key);
            return;
        }
        if (current != waiting.UsedRefreshFingerprint)
        {
            Log.PendingSuperseded(logger, ua.Key, ua.Spec.Credentials.Oauth!.SecretRef.Name);
            await ForgetPendingAsync(ua.Key);
            return;
        }
        var state = await states.GetAsync(ua.Key, CancellationToken.None);
        Log.Recovered(logger, ua.Key, waiting.AcceptedAt, ua.Spec.Credentials.Oauth!.SecretRef.Name);
        await WritePendingAsync(ua, fence, secret, waiting, state.HandledRequest, OAuthRefreshMetrics.Recovered);
    }

    /// <summary>Writes the pair with the read's version as precondition; on a conflict re-reads and decides again.</summary>
    private async Task WritePendingAsync(UpstreamAccount ua, string fence, VersionedSecret secret, PendingTokens record, string? request, string result)
    {
        var ct = CancellationToken.None;
        var ns = ua.Metadata.Namespace ?? "default";
        var secretName = ua.Spec.Credentials.Oauth!.SecretRef.Name;
        var value = Encoding.UTF8.GetBytes(record.AuthJson);
        var delay = TimeSpan.FromMilliseconds(200);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var written = await accounts.Secrets.WriteAsync(ns, secretName, secret.Version, record.SecretKey, value, ct);
                if (written == SecretWriteResult.Written) break;
                if (written == SecretWriteResult.NotFound)
                {
                    Log.SecretGone(logger, ua.Key, secretName);
                    await ForgetPendingAsync(ua.Key);
                    return;
                }
                // Conflict: someone changed the Secret. Still the token we replaced → an unrelated edit, write again on
                // the new version; already ours → done; anything else → a person put new tokens in, theirs win.
                var fresh = await accounts.Secrets.ReadAsync(ns, secretName, fresh: true, ct);
                var now = fresh is null ? null : OAuthAuthFile.Find(fresh.Data);
                var fp = OAuthAuthFile.Fingerprint(now?.RefreshToken);
                if (fresh is null || now is null || fp != record.UsedRefreshFingerprint)
                {
                    if (fp != record.NewRefreshFingerprint) Log.PendingSuperseded(logger, ua.Key, secretName);
                    await ForgetPendingAsync(ua.Key);
                    return;
                }
                secret = fresh;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.WriteFailed(logger, ua.Key, secretName, ex);
                if (attempt >= MaxWriteAttempts)
                {
                    // Kept in Redis (and memory): the next pass writes it before anything else happens to this account.
                    OAuthRefreshMetrics.Count(OAuthRefreshMetrics.Error);
                    return;
                }
            }
            if (attempt >= MaxWriteAttempts) return;
            await lease.ExtendAsync(ua.Key, fence, _options.LeaseDuration, ct);
            await Task.Delay(delay, time, ct);
            delay *= 2;
        }

        await ForgetPendingAsync(ua.Key);
        await states.SetAsync(ua.Key, new OAuthAccountState { LastRefreshAt = record.AcceptedAt, HandledRequest = request }, ct);
        OAuthRefreshMetrics.Count(result);
        Log.Refreshed(logger, ua.Key, record.ExpiresAt);
        await accounts.EventAsync(ua, false, "TokenRefreshed",
            record.ExpiresAt is { } e ? $"Refreshed the OAuth access token; it expires at {e:O}." : "Refreshed the OAuth access token.", ct);
        accounts.Changed(ua.Key);
    }

    private async Task FailAsync(UpstreamAccount ua, OAuthAuthFile auth, OAuthAccountState state, string? request, TokenGrantFailure failure)
    {
        var now = time.GetUtcNow();
        var fp = OAuthAuthFile.Fingerprint(auth.RefreshToken);
        var attempts = state.FailureFor(fp) is null ? 1 : state.Attempts + 1;
        var backoff = Backoff(attempts);
        await states.SetAsync(ua.Key, state with
        {
            Failure = new OAuthFailure(failure.Rejected, failure.Error, failure.Description, now, fp),
            Attempts = attempts,
            NextAttemptAt = now + backoff,
            HandledRequest = request ?? state.HandledRequest,
        }, CancellationToken.None);
        OAuthRefreshMetrics.Count(failure.Rejected ? OAuthRefreshMetrics.Rejected : OAuthRefreshMetrics.Error);
        Log.RefreshFailed(logger, ua.Key, failure.Rejected ? "rejected" : "transient", failure.Error, failure.Description, backoff);
        await accounts.EventAsync(ua, true, failure.Rejected ? "TokenRefreshRejected" : "TokenRefreshFailed",
            $"OAuth refresh failed: {failure.Error}: {failure.Description}", CancellationToken.None);
        accounts.Changed(ua.Key);
    }

    /// <summary>MinBackoff doubled per consecutive failure, capped at MaxBackoff, with ±10 % jitter so replicas and accounts spread out.</summary>
    private TimeSpan Backoff(int attempts)
    {
        var exp = Math.Min(attempts - 1, 30);
        var ms = Math.Min(_options.MaxBackoff.TotalMilliseconds, _options.MinBackoff.TotalMilliseconds * Math.Pow(2, exp));
        return TimeSpan.FromMilliseconds(ms * (0.9 + Random.Shared.NextDouble() * 0.2));
    }

    private async Task ForgetPendingAsync(string account)
    {
        _unwritten.TryRemove(account, out _);
        try
        {
            await pending.DeleteAsync(account, CancellationToken.None);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Harmless: a stale pending pair is recognised (its new token is already in the Secret) and dropped.
            Log.PassFailed(logger, e);
        }
    }
}

/// <summary>Who holds refresh leases from this process (pod name plus a random suffix).</summary>
public sealed record OAuthRefresherIdentity(string Value);
