using System.Security.Cryptography;

namespace Gateway.MockUpstream.OAuth;

/// <summary>The answer of a refresh-token grant: a new pair, or an OAuth error (RFC 6749 §5.2).</summary>
public sealed record RefreshOutcome(IssuedTokens? Tokens, string? Error, string? Description);

/// <summary>An access token, its single-use refresh token and the access token's lifetime.</summary>
public sealed record IssuedTokens(string AccessToken, string RefreshToken, double ExpiresInSeconds, string Account);

/// <summary>What the provider did for one account, for tests (GET /_mock/oauth/accounts/{account}).</summary>
public sealed record OAuthAccountStats(
    string Account,
    long Refreshes,
    long InvalidGrants,
    long ReusedRefreshTokens,
    long Requests,
    long RejectedRequests,
    string? CurrentRefreshToken,
    bool Revoked);

/// <summary>
/// Tokens as a real provider keeps them: each account has token families (one per sign-in); a refresh
/// rotates the family's refresh token, and a used refresh token is dead. Presenting a used one again is
/// answered invalid_grant and, as providers with reuse detection do, revokes the whole family. Revoking an
/// account kills its refresh and access tokens. Thread-safe with one lock: the mock serves tests, not load.
/// </summary>
public sealed class OAuthTokenStore(MockOAuthOptions options, TimeProvider time)
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, AccountState> _accounts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, RefreshToken> _refreshTokens = new(StringComparer.Ordinal);
    private readonly Dictionary<string, AccessToken> _accessTokens = new(StringComparer.Ordinal);
    private long _families;

    /// <summary>Signs an account in: a new family with a fresh pair (the authorization-code step of a real flow).</summary>
    public IssuedTokens SignIn(string account, double? accessTokenLifetimeSeconds = null)
    {
        lock (_lock)
        {
            var state = Account(account);
            state.Revoked = false;
            var family = ++_families;
            state.Families.Add(family);
            return IssueLocked(state, family, accessTokenLifetimeSeconds ?? options.AccessTokenLifetimeSeconds);
        }
    }

    /// <summary>The refresh_token grant.</summary>
    public RefreshOutcome Refresh(string refreshToken, string? clientId)
    {
        if (options.ClientId.Length > 0 && clientId != options.ClientId)
            return new RefreshOutcome(null, "invalid_client", "The client_id is not registered with the mock provider.");
        lock (_lock)
        {
            if (!_refreshTokens.TryGetValue(refreshToken, out var rt))
                return new RefreshOutcome(null, "invalid_grant", "The refresh token is not known to the mock provider.");
            var state = _accounts[rt.Account];
            if (!state.Families.Contains(rt.Family))
            {
                state.InvalidGrants++;
                return new RefreshOutcome(null, "invalid_grant", "The refresh token was revoked.");
            }
            if (rt.Used)
            {
                state.InvalidGrants++;
                state.Reused++;
                RevokeFamilyLocked(state, rt.Family);
                return new RefreshOutcome(null, "invalid_grant", "The refresh token was already used; its token family is revoked.");
            }
            rt.Used = true;
            state.Refreshes++;
            return new RefreshOutcome(IssueLocked(state, rt.Family, options.AccessTokenLifetimeSeconds), null, null);
        }
    }

    /// <summary>Every access and refresh token issued to <paramref name="account"/>, live or not, for tests that search
    /// for them where they must not be (logs, metrics, Redis, PostgreSQL).</summary>
    public IReadOnlyList<string> IssuedTo(string account)
    {
        lock (_lock)
        {
            return
            [
                .. _accessTokens.Where(t => t.Value.Account == account).Select(t => t.Key),
                .. _refreshTokens.Where(t => t.Value.Account == account).Select(t => t.Key),
            ];
        }
    }

    /// <summary>Checks an access token and counts the request for its account; false when unknown, expired or revoked.</summary>
    public bool TryUseAccessToken(string token)
    {
        lock (_lock)
        {
            if (!_accessTokens.TryGetValue(token, out var at)) return false;
            var state = _accounts[at.Account];
            if (!state.Families.Contains(at.Family) || at.ExpiresAt <= time.GetUtcNow())
            {
                state.RejectedRequests++;
                return false;
            }
            state.Requests++;
            return true;
        }
    }

    /// <summary>Revokes every token family of the account (refresh and access tokens). False when the account is unknown.</summary>
    public bool Revoke(string account)
    {
        lock (_lock)
        {
            if (!_accounts.TryGetValue(account, out var state)) return false;
            foreach (var f in state.Families.ToList()) RevokeFamilyLocked(state, f);
            state.Revoked = true;
            return true;
        }
    }

    /// <summary>Invalidates the account's access tokens issued so far (as a provider does after a password change or an
    /// early expiry) and keeps its refresh token usable. False when the account is unknown.</summary>
    public bool InvalidateAccessTokens(string account)
    {
        lock (_lock)
        {
            if (!_accounts.ContainsKey(account)) return false;
            foreach (var token in _accessTokens.Where(t => t.Value.Account == account).Select(t => t.Key).ToList()) _accessTokens.Remove(token);
            return true;
        }
    }

    public OAuthAccountStats? Stats(string account)
    {
        lock (_lock)
        {
            return _accounts.TryGetValue(account, out var s) ? StatsLocked(s) : null;
        }
    }

    public IReadOnlyList<OAuthAccountStats> AllStats()
    {
        lock (_lock)
        {
            return _accounts.Values.OrderBy(s => s.Id, StringComparer.Ordinal).Select(StatsLocked).ToList();
        }
    }

    private OAuthAccountStats StatsLocked(AccountState s) =>
        new(s.Id, s.Refreshes, s.InvalidGrants, s.Reused, s.Requests, s.RejectedRequests, s.CurrentRefreshToken, s.Revoked);

    private AccountState Account(string account)
    {
        if (!_accounts.TryGetValue(account, out var state)) _accounts[account] = state = new AccountState(account);
        return state;
    }

    private IssuedTokens IssueLocked(AccountState state, long family, double lifetimeSeconds)
    {
        var access = "mock-at-" + Random();
        var refresh = "mock-rt-" + Random();
        _accessTokens[access] = new AccessToken(state.Id, family, time.GetUtcNow().AddSeconds(lifetimeSeconds));
        _refreshTokens[refresh] = new RefreshToken(state.Id, family);
        state.CurrentRefreshToken = refresh;
        return new IssuedTokens(access, refresh, lifetimeSeconds, state.Id);
    }

    private static void RevokeFamilyLocked(AccountState state, long family)
    {
        state.Families.Remove(family);
        state.CurrentRefreshToken = null;
    }

    private static string Random() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed class AccountState(string id)
    {
        public string Id { get; } = id;
        public HashSet<long> Families { get; } = [];
        public string? CurrentRefreshToken { get; set; }
        public long Refreshes { get; set; }
        public long InvalidGrants { get; set; }
        public long Reused { get; set; }
        public long Requests { get; set; }
        public long RejectedRequests { get; set; }
        public bool Revoked { get; set; }
    }

    private sealed class RefreshToken(string account, long family)
    {
        public string Account { get; } = account;
        public long Family { get; } = family;
        public bool Used { get; set; }
    }

    private sealed record AccessToken(string Account, long Family, DateTimeOffset ExpiresAt);
}
