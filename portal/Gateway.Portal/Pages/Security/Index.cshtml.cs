using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Gateway.Portal.Security;
using Gateway.Portal.Sessions;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Security;

/// <summary>Security overview: active sessions (sign out one or all) and sign-in history.</summary>
public sealed class IndexModel(SessionStore sessions, SecurityQueries queries, AuditLog audit) : PageModel
{
    [BindProperty(SupportsGet = true)] public int P { get; set; } = 1;

    public IReadOnlyList<PortalSessionRow> Sessions { get; private set; } = [];
    public Guid? CurrentSessionId { get; private set; }
    public Paged<SigninEventRow> History { get; private set; } = new([], 1, false);
    public string? Message { get; private set; }

    public async Task OnGetAsync(string? done, CancellationToken ct)
    {
        Message = done;
        await LoadAsync(ct);
    }

    /// <summary>"Sign out this device" for one session of the user's (this one or another).</summary>
    public async Task<IActionResult> OnPostRevokeAsync(Guid sessionId, CancellationToken ct)
    {
        var userId = User.UserId();
        var revoked = await sessions.RevokeAsync(userId, sessionId, ct);
        if (revoked) await audit.AppendAsync(userId, AuditActions.SessionRevoked, sessionId == HttpContext.PortalSession()?.Id ? "this device" : "another device", ClientInfo.From(HttpContext), ct);
        if (sessionId == HttpContext.PortalSession()?.Id)
        {
            await HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
            return Redirect("/signin");
        }
        return Redirect("/security?done=" + (revoked ? "revoked" : "gone"));
    }

    /// <summary>"Sign out everywhere": every session of the user ends at once, this one included.</summary>
    public async Task<IActionResult> OnPostEverywhereAsync(CancellationToken ct)
    {
        var userId = User.UserId();
        var ended = await sessions.RevokeAllAsync(userId, except: null, ct);
        await audit.AppendAsync(userId, AuditActions.SignOutEverywhere, ended.ToString(System.Globalization.CultureInfo.InvariantCulture), ClientInfo.From(HttpContext), ct);
        await HttpContext.SignOutAsync(CookieAuthenticationDefaults.AuthenticationScheme);
        return Redirect("/signin");
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var userId = User.UserId();
        CurrentSessionId = HttpContext.PortalSession()?.Id;
        Sessions = await sessions.ListActiveAsync(userId, ct);
        History = await queries.SignInHistoryAsync(userId, P, ct);
    }
}
