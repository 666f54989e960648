using Gateway.Portal.Auth;
using Gateway.Portal.Sessions;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Account;

/// <summary>Sign-in: login or e-mail, password, and an authenticator code or a recovery code, in one form.</summary>
[AllowAnonymous]
[AuthRateLimited]
public sealed class SignInModel(SignInService signIn, SessionStore sessions, TimeProvider time) : PageModel
{
    [BindProperty] public string? Login { get; set; }
    [BindProperty] public string? Password { get; set; }
    [BindProperty] public string? Code { get; set; }
    [BindProperty(SupportsGet = true)] public string? ReturnUrl { get; set; }

    /// <summary>Which message the page shows (see the view).</summary>
    public string? Error { get; private set; }
    public int LockedMinutes { get; private set; }

    public IActionResult OnGet() => User.Identity?.IsAuthenticated == true ? LocalRedirect(SafeReturnUrl()) : Page();

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var outcome = await signIn.SignInAsync(Login ?? "", Password ?? "", Code ?? "", ClientInfo.From(HttpContext), ct);
        Password = null;
        Code = null;
        if (!outcome.Succeeded)
        {
            // One message for wrong login, password or code: never say which part was wrong.
            Error = outcome.LockedUntil is { } until ? "locked" : outcome.Result == SignInResults.Suspended ? "suspended" : "invalid";
            if (outcome.LockedUntil is { } lu) LockedMinutes = Math.Max(1, (int)Math.Ceiling((lu - time.GetUtcNow()).TotalMinutes));
            Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Page();
        }
        var (token, row) = await sessions.CreateAsync(outcome.UserId!.Value, ClientInfo.From(HttpContext), ct);
        var principal = PortalClaims.Create(outcome.UserId.Value, outcome.Login!, outcome.Role!, token, CookieAuthenticationDefaults.AuthenticationScheme);
        await HttpContext.SignInAsync(CookieAuthenticationDefaults.AuthenticationScheme, principal, new AuthenticationProperties
        {
            IsPersistent = false,
            IssuedUtc = row.CreatedAt,
            ExpiresUtc = row.ExpiresAt,
        });
        return LocalRedirect(SafeReturnUrl());
    }

    private string SafeReturnUrl() => !string.IsNullOrEmpty(ReturnUrl) && Url.IsLocalUrl(ReturnUrl) ? ReturnUrl : "/";
}
