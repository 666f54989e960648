using System.Diagnostics;
using Gateway.Core.Projection;
using Gateway.Core.Resources;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Picks the account for one attempt: eligible targets (matches the user's selector, not tried yet,
/// not cooling down, under its concurrency limit), lowest priority tier first, then a weighted choice
/// of two with the one having fewer requests in flight winning ("power of two choices").
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

    /// <summary>Index of the chosen target in <paramref name="targets"/>, or -1. <paramref name="tried"/> is a bit set of indexes already used.</summary>
    public static int Pick(UpstreamTarget[] targets, LabelSelector? selector, ulong tried, out bool isProbe)
    {
        var now = Stopwatch.GetTimestamp();
        while (true)
        {
            var chosen = PickOnce(targets, selector, tried, now);
            if (chosen < 0) { isProbe = false; return -1; }
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
            if (IsEligible(targets[i], selector, tried, i, now)) return true;
        }
        return false;
    }

    private static int PickOnce(UpstreamTarget[] targets, LabelSelector? selector, ulong tried, long now)
    {
        var count = Math.Min(targets.Length, 64);
        var tier = int.MaxValue;
        var totalWeight = 0L;
        var eligibleCount = 0;
        // First pass: the lowest tier with an eligible target and its total weight.
        for (var i = 0; i < count; i++)
        {
            if (!IsEligible(targets[i], selector, tried, i, now)) continue;
            var p = targets[i].Account.Priority;
            if (p > tier) continue;
            if (p < tier) { tier = p; totalWeight = 0; eligibleCount = 0; }
            totalWeight += Math.Max(1, targets[i].Account.Weight);
            eligibleCount++;
        }
        if (eligibleCount == 0) return -1;
        int chosen;
        if (eligibleCount == 1) chosen = Weighted(targets, selector, tried, now, tier, count, 0);
        else
        {
            var a = Weighted(targets, selector, tried, now, tier, count, Random.Shared.NextInt64(totalWeight));
            var b = Weighted(targets, selector, tried, now, tier, count, Random.Shared.NextInt64(totalWeight));
            chosen = targets[b].Health.InFlight < targets[a].Health.InFlight ? b : a;
        }
        return chosen;
    }

    private static int Weighted(UpstreamTarget[] targets, LabelSelector? selector, ulong tried, long now, int tier, int count, long ticket)
    {
        var last = -1;
        for (var i = 0; i < count; i++)
        {
            if (targets[i].Account.Priority != tier || !IsEligible(targets[i], selector, tried, i, now)) continue;
            last = i;
            ticket -= Math.Max(1, targets[i].Account.Weight);
            if (ticket < 0) return i;
        }
        return last;
    }

    private static bool IsEligible(UpstreamTarget t, LabelSelector? selector, ulong tried, int index, long now)
    {
        if ((tried & (1UL << index)) != 0) return false;
        if (t.Health.IsCoolingDown(now)) return false;
        var limits = t.Account.Limits;
        if (limits is not null)
        {
            if (limits.MaxConcurrent is > 0 && t.Health.InFlight >= limits.MaxConcurrent) return false;
            if (!t.Health.UnderLimits(limits.RequestsPerMinute, limits.TokensPerMinute)) return false;
        }
        return Matches(selector, t.Account.Labels);
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
