using System.Security.Claims;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace Gateway.Portal.Sessions;

/// <summary>
/// Checks the server-side session behind the cookie on every request. A revoked, idle, expired or
/// suspended session rejects the principal and deletes the cookie; a changed role re-issues it.
/// </summary>
public sealed class SessionCookieEvents(SessionStore sessions) : CookieAuthenticationEvents
{
    /// <summary>HttpContext.Items key of the request's <see cref="PortalSession"/>.</summary>
    public static readonly object ItemKey = typeof(PortalSession);

    public override async Task ValidatePrincipal(CookieValidatePrincipalContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var token = context.Principal?.FindFirstValue(PortalClaims.SessionId);
        var session = token is null ? null : await sessions.ValidateAsync(token, context.HttpContext.RequestAborted);
        if (session is null)
        {
            context.RejectPrincipal();
            await context.HttpContext.SignOutAsync(context.Scheme.Name);
            return;
        }
        context.HttpContext.Items[ItemKey] = session;
        var isAdmin = context.Principal!.IsInRole(PortalClaims.AdminRole);
        if (isAdmin != (session.Role == PortalClaims.AdminRole) || context.Principal.Identity?.Name != session.Login)
        {
            // The role (GitOps) or login changed since sign-in: carry the current one from now on.
            context.ReplacePrincipal(PortalClaims.Create(session.UserId, session.Login, session.Role, token!, context.Scheme.Name));
            context.ShouldRenew = true;
        }
    }

    public override Task RedirectToAccessDenied(RedirectContext<CookieAuthenticationOptions> context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.StatusCode = StatusCodes.Status403Forbidden;
        return Task.CompletedTask;
    }
}

/// <summary>Access to the current request's session.</summary>
public static class PortalSessionHttpContextExtensions
{
    /// <summary>The validated session of this request, or null when anonymous.</summary>
    public static PortalSession? PortalSession(this HttpContext context) =>
        context?.Items.TryGetValue(SessionCookieEvents.ItemKey, out var s) == true ? s as PortalSession : null;
}
