using Gateway.Portal.Auth;
using Gateway.Portal.Sessions;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Account;

/// <summary>Sign out of this device, or of every device (ends every session of the user at once).</summary>
public sealed class SignOutModel(SessionStore sessions, AuditLog audit) : PageModel
{
    public void OnGet()
    {
    }

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var token = User.FindFirst(PortalClaims.SessionId)?.Value;
        if (token is not null) await sessions.RevokeTokenAsync(token, ct);
        await audit.AppendAsync(User.UserId(), AuditActions.SignOut, null, ClientInfo.From(HttpContext), ct);
        await HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
        return Redirect("/signin");
    }

    public async Task<IActionResult> OnPostEverywhereAsync(CancellationToken ct)
    {
        var userId = User.UserId();
        var ended = await sessions.RevokeAllAsync(userId, except: null, ct);
        await audit.AppendAsync(userId, AuditActions.SignOutEverywhere, ended.ToString(System.Globalization.CultureInfo.InvariantCulture), ClientInfo.From(HttpContext), ct);
        await HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
        return Redirect("/signin");
    }
}
