using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>Upstream accounts: health and error rate over the last hour, live traffic from Redis when the portal has it.</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class UpstreamsModel(AdminQueries queries, AdminRedis redis, TimeProvider time) : PageModel
{
    public IReadOnlyList<AdminUpstream> Accounts { get; private set; } = [];
    public IReadOnlyDictionary<string, UpstreamLive?> Live { get; private set; } = new Dictionary<string, UpstreamLive?>();
    /// <summary>Per account: until when it cools down, <see cref="DateTimeOffset.MinValue"/> for not cooling down, null for unknown.</summary>
    public IReadOnlyDictionary<string, DateTimeOffset?> Cooldowns { get; private set; } = new Dictionary<string, DateTimeOffset?>();
    public DateTimeOffset Now { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        Now = time.GetUtcNow();
        Accounts = await queries.UpstreamsAsync(ct);
        var live = new Dictionary<string, UpstreamLive?>(StringComparer.Ordinal);
        var cooldowns = new Dictionary<string, DateTimeOffset?>(StringComparer.Ordinal);
        foreach (var a in Accounts)
        {
            live[a.Account] = await redis.UpstreamThisMinuteAsync(a.Account, ct);
            cooldowns[a.Account] = await redis.UpstreamCooldownAsync(a.Account, ct);
        }
        Live = live;
        Cooldowns = cooldowns;
    }

    /// <summary>"expired", "expiring" (within an hour) or "valid" for an OAuth account's token; null when not applicable or unknown.</summary>
    public static string? TokenState(AdminUpstream a, DateTimeOffset now) =>
        !a.OAuth || a.TokenExpiresAt is not { } at ? null : at <= now ? "expired" : at - now < TimeSpan.FromHours(1) ? "expiring" : "valid";

    /// <summary>healthy, degraded (some failures), failing (half or more), idle, disabled.</summary>
    public static string Health(AdminUpstream a) =>
        a.Disabled ? "disabled" : a.ErrorRate is not { } r ? "idle" : r >= 0.5 ? "failing" : r > 0 ? "degraded" : "healthy";
}
