using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>Upstream accounts: health and error rate over the last hour, live traffic from Redis when the portal has it.</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class UpstreamsModel(AdminQueries queries, AdminRedis redis) : PageModel
{
    public IReadOnlyList<AdminUpstream> Accounts { get; private set; } = [];
    public IReadOnlyDictionary<string, UpstreamLive?> Live { get; private set; } = new Dictionary<string, UpstreamLive?>();

    public async Task OnGetAsync(CancellationToken ct)
    {
        Accounts = await queries.UpstreamsAsync(ct);
        var live = new Dictionary<string, UpstreamLive?>(StringComparer.Ordinal);
        foreach (var a in Accounts) live[a.Account] = await redis.UpstreamThisMinuteAsync(a.Account, ct);
        Live = live;
    }

    /// <summary>healthy, degraded (some failures), failing (half or more), idle, disabled.</summary>
    public static string Health(AdminUpstream a) =>
        a.Disabled ? "disabled" : a.ErrorRate is not { } r ? "idle" : r >= 0.5 ? "failing" : r > 0 ? "degraded" : "healthy";
}
