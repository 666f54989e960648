using Gateway.Portal.Auth;
using Gateway.Portal.Sessions;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Security;

/// <summary>Change password: the current one is required, the new one follows the enrolment policy, other sessions end.</summary>
[AuthRateLimited]
public sealed class PasswordModel(AccountSecurityService security) : PageModel
{
    [BindProperty] public string? CurrentPassword { get; set; }
    [BindProperty] public string? NewPassword { get; set; }
    [BindProperty] public string? ConfirmPassword { get; set; }

    public bool WrongPassword { get; private set; }
    public IReadOnlyList<PasswordProblem> Problems { get; private set; } = [];
    public bool Changed { get; private set; }
    public int SessionsEnded { get; private set; }

    public void OnGet() => Response.Headers.CacheControl = "no-store";

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        Response.Headers.CacheControl = "no-store";
        var result = await security.ChangePasswordAsync(User.UserId(), HttpContext.PortalSession()?.Id, CurrentPassword, NewPassword, ConfirmPassword, ClientInfo.From(HttpContext), ct);
        CurrentPassword = NewPassword = ConfirmPassword = null;
        if (!result.Succeeded)
        {
            WrongPassword = result.WrongPassword;
            Problems = result.Problems;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        Changed = true;
        SessionsEnded = result.SessionsEnded;
        return Page();
    }
}
