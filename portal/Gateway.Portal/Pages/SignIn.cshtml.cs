using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages;

/// <summary>
/// Sign-in with user name, password and TOTP code. The portal shell renders the form; credential checks
/// arrive with enrolment (the portal issue), so until then every attempt is refused the same way.
/// </summary>
public sealed class SignInModel : PageModel
{
    [BindProperty] public string? UserName { get; set; }
    [BindProperty] public string? Password { get; set; }
    [BindProperty] public string? Code { get; set; }

    public string? Error { get; private set; }

    public void OnGet()
    {
    }

    public IActionResult OnPost()
    {
        // One message for every failure: never reveal which of the three parts was wrong.
        Error = "The user name, password or code is not correct.";
        Password = null;
        Code = null;
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        return Page();
    }
}
