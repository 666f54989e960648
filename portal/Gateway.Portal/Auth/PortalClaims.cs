using System.Security.Claims;

namespace Gateway.Portal.Auth;

/// <summary>Claims of a signed-in portal user (the contract every portal page relies on).</summary>
public static class PortalClaims
{
    /// <summary>The portal session token (only its hash is stored); see <see cref="Sessions.SessionStore"/>.</summary>
    public const string SessionId = "tg:sid";
    public const string AdminRole = "admin";
    /// <summary>Authorization policy requiring <see cref="AdminRole"/>.</summary>
    public const string AdminPolicy = "Admin";

    /// <summary>The signed-in user's <c>users.id</c>.</summary>
    public static Guid UserId(this ClaimsPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        var value = principal.FindFirstValue(ClaimTypes.NameIdentifier);
        return Guid.TryParse(value, out var id) ? id : throw new InvalidOperationException("The principal has no portal user id (is the page anonymous?).");
    }

    /// <summary>True when the principal carries the admin role.</summary>
    public static bool IsAdmin(this ClaimsPrincipal principal) => principal?.IsInRole(AdminRole) == true;

    /// <summary>Builds the principal the cookie carries.</summary>
    public static ClaimsPrincipal Create(Guid userId, string login, string role, string sessionToken, string authenticationType)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, userId.ToString("D")),
            new(ClaimTypes.Name, login),
            new(SessionId, sessionToken),
        };
        if (role == AdminRole) claims.Add(new Claim(ClaimTypes.Role, AdminRole));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, authenticationType));
    }
}
