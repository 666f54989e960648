using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Account;

/// <summary>
/// The invite link. A valid invite starts an enrolment (state in a protected cookie) and moves on to
/// /enrol, so the token leaves the address bar (and Referer headers) after this one request. A used,
/// expired or unknown link gets a page saying which.
/// </summary>
[AllowAnonymous]
public sealed class InviteModel(EnrolmentService enrolment, EnrolmentCookie cookie) : PageModel
{
    public InviteStatus Status { get; private set; }
    public DateTimeOffset? ExpiredAt { get; private set; }

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        // Read from route data rather than a handler argument: MVC traces handler arguments.
        var token = RouteData.Values["token"] as string ?? "";
        var hash = EnrolmentService.HashInviteToken(token);
        var invite = await enrolment.LookupAsync(hash, ct);
        if (invite.Status == InviteStatus.Valid)
        {
            cookie.Write(HttpContext, cookie.Start(invite.UserId, hash));
            return Redirect("/enrol");
        }
        Status = invite.Status;
        ExpiredAt = invite.ExpiresAt;
        Response.StatusCode = invite.Status == InviteStatus.Unknown ? StatusCodes.Status404NotFound : StatusCodes.Status410Gone;
        return Page();
    }
}
