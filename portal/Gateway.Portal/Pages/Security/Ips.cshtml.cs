using Gateway.Portal.Auth;
using Gateway.Portal.Security;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Security;

/// <summary>API use by source IP over the last 30 days: requests, tokens and last use per client address.</summary>
public sealed class IpsModel(SecurityQueries queries) : PageModel
{
    public IReadOnlyList<IpUse> IpUse { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct) => IpUse = await queries.ApiUseByIpAsync(User.UserId(), ct);
}
