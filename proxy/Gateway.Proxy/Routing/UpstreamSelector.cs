using System.Diagnostics;
using Gateway.Core.Projection;
using Gateway.Core.Resources;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Picks the account for one attempt: eligible targets (matches the user's selector, not tried yet, not cooling
/// down, under its concurrency, per-minute and window limits), lowest priority tier first, then a choice weighted
/// by weight × window headroom, of two with the one having fewer requests in flight winning ("power of two
/// choices"). Accounts whose OAuth token is being refreshed or about to expire are the last resort.
/// </summary>
public static class UpstreamSelector
{
    /// <summary>
    /// Picks for a user: the accounts of their <see cref="UserProjection.DedicatedSelector"/> first, then, while
    /// <see cref="UserProjection.FallbackToShared"/>, the shared pool (<see cref="UserProjection.UpstreamSelector"/>).
    /// Without a dedicated selector this is <see cref="Pick(UpstreamTarget[], LabelSelector?, ulong, out bool)"/> over the shared pool.
    /// </summary>
    public static int PickFor(UpstreamTarget[] targets, UserProjection user, ulong tried, out bool isProbe)
    {
        if (user.DedicatedSelector is { } dedicated)
        {
            var index = Pick(targets, dedicated, tried, out isProbe);
            if (index >= 0 || !user.FallbackToShared) return index;
        }
        return Pick(targets, user.UpstreamSelector, tried, out isProbe);
    }

    /// <summary>True when an account not yet tried could take the user's request now, in the order of <see cref="PickFor"/>.</summary>
    public static bool HasCandidateFor(UpstreamTarget[] targets, UserProjection user, ulong tried)
    {
        if (user.DedicatedSelector is { } dedicated)
        {
            if (HasCandidate(targets, dedicated, tried)) return true;
            if (!user.FallbackToShared) return false;
        }
        return HasCandidate(targets, user.UpstreamSelector, tried);
    }

    /// <summary>Whether the user's requests may ever reach <paramref name="labels"/>' account (for listings such as /v1/models).</summary>
    public static bool MayUse(UserProjection user, Dictionary<string, string>? labels) =>
        user.DedicatedSelector is { } dedicated
            ? Matches(dedicated, labels) || user.FallbackToShared && Matches(user.UpstreamSelector, labels)
            : Matches(user.UpstreamSelector, labels);

    /// <summary>An OAuth account whose token expires within this, or within half its oauth.refreshBefore if that is
    /// shorter, is used only when no other account can take the request: the operator refreshes tokens refreshBefore
    /// ahead (5 minutes by default), so a token this close to expiry means its refresh is late or failing.</summary>
    public static readonly TimeSpan ExpiringWithin = TimeSpan.FromSeconds(60);

    private static long ExpiringMarginMs(UpstreamProjection account) =>
        account.RefreshBeforeSeconds is int refreshBefore && refreshBefore * 500L < (long)ExpiringWithin.TotalMilliseconds
            ? refreshBefore * 500L
            : (long)ExpiringWithin.TotalMilliseconds;

    /// <summary>Index of the chosen target in <paramref name="targets"/>, or -1. <paramref name="tried"/> is a bit set of indexes already used.</summary>
    /// <remarks>Accounts whose OAuth token is being refreshed or about to expire are passed over while another account
    /// can take the request, in any tier; they remain the last resort rather than a reason to fail.</remarks>
    public static int Pick(UpstreamTarget[] targets, LabelSelector? selector, ulong tried, out bool isProbe)
    {
        var now = Stopwatch.GetTimestamp();
        var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var avoid = true;
        while (true)
        {
            var chosen = PickOnce(targets, selector, tried, now, avoid ? nowMs : long.MinValue);
            if (chosen < 0)
            {
                if (avoid) { avoid = false; continue; }
                isProbe = false;
                return -1;
            }
            // The cooldown check is repeated atomically: in half-open state only one request probes.
            if (targets[chosen].Health.CanSend(now, out isProbe)) return chosen;
            tried |= 1UL << chosen;
        }
    }

    /// <summary>True when some target not yet tried could take a request now (no probe is claimed).</summary>
    public static bool HasCandidate(UpstreamTarget[] targets, LabelSelector? selector, ulong tried)
    {
        var now = Stopwatch.GetTimestamp();
        var count = Math.Min(targets.Length, 64);
        for (var i = 0; i < count; i++)
        {
            if (ShareOf(targets[i], selector, tried, i, now, long.MinValue) > 0) return true;
        }
        return false;
    }

    /// <summary>
    /// The lowest tier with an eligible target, then a choice weighted by weight × headroom (the share of the account's
    /// window limits still free), so load spreads over the tier in proportion to what each account has left rather
    /// than draining one; of two such draws the one with fewer requests in flight wins ("power of two choices").
    /// </summary>
    private static int PickOnce(UpstreamTarget[] targets, LabelSelector? selector, ulong tried, long now, long nowMs)
    {
        var count = Math.Min(targets.Length, 64);
        var tier = int.MaxValue;
        var total = 0L;
        var eligibleCount = 0;
        // Shares on the stack: one computation per target per pick (headroom reads the window totals).
        Span<long> shares = stackalloc long[count];
        for (var i = 0; i < count; i++)
        {
            var share = shares[i] = ShareOf(targets[i], selector, tried, i, now, nowMs);
            if (share == 0) continue;
            var p = targets[i].Account.Priority;
            if (p > tier) continue;
            if (p < tier) { tier = p; total = 0; eligibleCount = 0; }
            total += share;
            eligibleCount++;
        }
        if (eligibleCount == 0) return -1;
        if (eligibleCount == 1) return Weighted(targets, shares, tier, 0);
        var a = Weighted(targets, shares, tier, Random.Shared.NextInt64(total));
        var b = Weighted(targets, shares, tier, Random.Shared.NextInt64(total));
        return targets[b].Health.InFlight < targets[a].Health.InFlight ? b : a;
    }

    private static int Weighted(UpstreamTarget[] targets, ReadOnlySpan<long> shares, int tier, long ticket)
    {
        var last = -1;
        for (var i = 0; i < shares.Length; i++)
        {
            if (shares[i] == 0 || targets[i].Account.Priority != tier) continue;
            last = i;
            ticket -= shares[i];
            if (ticket < 0) return i;
        }
        return last;
    }

    /// <summary>Headroom resolution of <see cref="ShareOf"/>: an account with 0.1 % of its windows left still gets a share.</summary>
    private const int HeadroomSteps = 1000;

    /// <summary>
    /// The target's share in the weighted choice, 0 when it cannot take a request now: already tried, cooling down, at
    /// its concurrency, per-minute or window limits, outside the selector, or (unless <paramref name="nowMs"/> is
    /// long.MinValue: the last-resort pass) refreshing or with a token about to expire at <paramref name="nowMs"/> (unix ms).
    /// </summary>
    private static long ShareOf(UpstreamTarget t, LabelSelector? selector, ulong tried, int index, long now, long nowMs)
    {
        if ((tried & (1UL << index)) != 0) return 0;
        if (t.Health.IsCoolingDown(now)) return 0;
        var account = t.Account;
        if (account.Limits is { } limits)
        {
            if (!t.Health.UnderConcurrency(limits.MaxConcurrent)) return 0;
            if (!t.Health.UnderLimits(limits.RequestsPerMinute, limits.TokensPerMinute)) return 0;
        }
        if (!Matches(selector, account.Labels)) return 0;
        if (nowMs != long.MinValue
            && (t.Health.Refreshing || account.TokenExpiresAt is { } expires && expires.ToUnixTimeMilliseconds() - nowMs < ExpiringMarginMs(account)))
            return 0;
        var weight = (long)Math.Max(1, account.Weight);
        if (account.Windows is not { Count: > 0 } windows) return weight * HeadroomSteps;
        var headroom = t.Health.Headroom(windows);
        return headroom <= 0 ? 0 : weight * Math.Max(1, (long)(headroom * HeadroomSteps));
    }

    /// <summary>metav1.LabelSelector semantics: every matchLabels pair and every expression must hold.</summary>
    public static bool Matches(LabelSelector? selector, Dictionary<string, string>? labels)
    {
        if (selector is null) return true;
        if (selector.MatchLabels is { Count: > 0 } ml)
        {
            foreach (var (k, v) in ml)
            {
                if (labels is null || !labels.TryGetValue(k, out var actual) || actual != v) return false;
            }
        }
        if (selector.MatchExpressions is { Count: > 0 } exprs)
        {
            foreach (var e in exprs)
            {
                string? actual = null;
                var has = labels is not null && labels.TryGetValue(e.Key, out actual);
                var ok = e.Operator switch
                {
                    "In" => has && e.Values is not null && e.Values.Contains(actual!),
                    "NotIn" => !has || e.Values is null || !e.Values.Contains(actual!),
                    "Exists" => has,
                    "DoesNotExist" => !has,
                    _ => false,
                };
                if (!ok) return false;
            }
        }
        return true;
    }
}
