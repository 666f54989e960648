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

    /// <remarks>The id is parsed here rather than by a route constraint, so every URL under /keys/reveal/ is this page (and a POST gets the antiforgery answer, not a 404).</remarks>
    public async Task<IActionResult> OnGetAsync(string requestId, CancellationToken ct)
    {
        if (!Guid.TryParse(requestId, out var id)) return NotFound();
        Response.Headers.CacheControl = "no-store, max-age=0";
        Response.Headers.Pragma = "no-cache";
        Response.Headers["Referrer-Policy"] = "no-referrer";
        Result = await reveal.OpenAsync(User.UserId(), id, ct);
        switch (Result.State)
        {
            case RevealState.NotFound:
                return NotFound();
            case RevealState.Done:
                return RedirectToPage("/Keys/Index", new { request = id });
            case RevealState.Pending:
                Response.Headers["Refresh"] = "2";
                break;
            default:
                break;
        }
        return Page();
    }
}
