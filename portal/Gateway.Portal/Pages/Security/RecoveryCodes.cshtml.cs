using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Security;

/// <summary>Regenerate recovery codes (password or a current code): ten new codes shown once; the old ones stop working.</summary>
[AuthRateLimited]
public sealed class RecoveryCodesModel(AccountSecurityService security) : PageModel
{
    [BindProperty] public string? Password { get; set; }
    [BindProperty] public string? Code { get; set; }

    public bool Refused { get; private set; }
    public IReadOnlyList<string> Codes { get; private set; } = [];

    public void OnGet() => Response.Headers.CacheControl = "no-store";

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        Response.Headers.CacheControl = "no-store";
        var codes = await security.RegenerateRecoveryCodesAsync(User.UserId(), Password, Code, ClientInfo.From(HttpContext), ct);
        Password = Code = null;
        if (codes is null)
        {
            Refused = true;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        Codes = codes;
        return Page();
    }
}
