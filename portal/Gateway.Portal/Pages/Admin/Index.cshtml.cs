using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>Admin overview: every user with balance, spend this period, budget and state (paged).</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class IndexModel(AdminQueries queries) : PageModel
{
    [BindProperty(SupportsGet = true)] public int P { get; set; } = 1;

    public IReadOnlyList<AdminUser> Users { get; private set; } = [];
    public int Total { get; private set; }
    public bool HasNext { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        P = Math.Max(1, P);
        (Users, Total, HasNext) = await queries.UsersAsync(P, ct);
    }
}
