using Gateway.Portal.Auth;
using Gateway.Portal.Keys;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Keys;

/// <summary>
/// Waits for the operator (reloading itself while the request is pending, no JavaScript needed), then shows
/// the issued key once: opening it deletes the ciphertext, so a reload, the back button or another replica
/// finds it already shown. Nothing here is cached or sent as a referrer.
/// </summary>
public sealed class RevealModel(KeyReveal reveal) : PageModel
{
    public RevealResult Result { get; private set; } = new(RevealState.NotFound);

    public async Task<IActionResult> OnGetAsync(Guid requestId, CancellationToken ct)
    {
        Response.Headers.CacheControl = "no-store, max-age=0";
        Response.Headers.Pragma = "no-cache";
        Response.Headers["Referrer-Policy"] = "no-referrer";
        Result = await reveal.OpenAsync(User.UserId(), requestId, ct);
        switch (Result.State)
        {
            case RevealState.NotFound:
                return NotFound();
            case RevealState.Done:
                return RedirectToPage("/Keys/Index", new { request = requestId });
            case RevealState.Pending:
                Response.Headers["Refresh"] = "2";
                break;
            default:
                break;
        }
        return Page();
    }
}
