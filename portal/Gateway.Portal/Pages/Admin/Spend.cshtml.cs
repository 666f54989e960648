using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>Spend and tokens over the last 30 days: per day, per model and per user.</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class SpendModel(SpendSnapshot snapshot) : PageModel
{
    public IReadOnlyList<SpendRow> ByDay { get; private set; } = [];
    public IReadOnlyList<SpendRow> ByModel { get; private set; } = [];
    public IReadOnlyList<SpendRow> ByUser { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct)
    {
        var figures = await snapshot.GetAsync(ct);
        (ByDay, ByModel, ByUser) = (figures.ByDay, figures.ByModel, figures.ByUser);
    }
}
