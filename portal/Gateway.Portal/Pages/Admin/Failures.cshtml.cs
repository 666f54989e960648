using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>Recent failed requests (status 400 and above), newest first.</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class FailuresModel(AdminQueries queries) : PageModel
{
    [BindProperty(SupportsGet = true)] public int P { get; set; } = 1;

    public IReadOnlyList<FailedRequest> Rows { get; private set; } = [];
    public bool HasNext { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        P = Math.Max(1, P);
        (Rows, HasNext) = await queries.FailedRequestsAsync(P, ct);
    }
}
