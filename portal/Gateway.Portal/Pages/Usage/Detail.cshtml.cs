using Gateway.Portal.Auth;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Usage;

/// <summary>One request in full. Another user's request id is a 404, like an unknown one.</summary>
public sealed class DetailModel(UsageQueries usage) : PageModel
{
    public UsageDetail Detail { get; private set; } = null!;

    public async Task<IActionResult> OnGetAsync(string requestId, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(requestId) || requestId.Length > 200) return NotFound();
        var detail = await usage.DetailAsync(User.UserId(), requestId, ct);
        if (detail is null) return NotFound();
        Detail = detail;
        return Page();
    }
}
