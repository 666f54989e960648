using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Gateway.Portal.Security;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Security;

/// <summary>The user's own activity from the append-only audit_log, newest first, paginated.</summary>
public sealed class ActivityModel(SecurityQueries queries) : PageModel
{
    [BindProperty(SupportsGet = true)] public int P { get; set; } = 1;

    public Paged<AuditLogRow> Entries { get; private set; } = new([], 1, false);

    public async Task OnGetAsync(CancellationToken ct) => Entries = await queries.ActivityAsync(User.UserId(), P, ct);
}
