using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Auth;

/// <summary>
/// What an enrolment in progress has collected so far. It travels between the steps in a cookie
/// encrypted and signed with data protection (shared by replicas), never in the URL, and carries its
/// own expiry (checked against the portal's clock). Nothing is written to the user row until the
/// authenticator code is confirmed, so an abandoned enrolment leaves no half-set account.
/// </summary>
public sealed record EnrolmentState
{
    public Guid UserId { get; init; }
    /// <summary>SHA-256 of the invite token (the token itself is never kept).</summary>
    public string InviteHash { get; init; } = "";
    public DateTimeOffset ExpiresAt { get; init; }
    /// <summary>PBKDF2 hash of the chosen password, once step 1 is done.</summary>
    public string? PasswordHash { get; init; }
    /// <summary>The TOTP secret (base32) offered in step 2, once step 1 is done.</summary>
    public string? TotpSecret { get; init; }
}

/// <summary>Reads and writes <see cref="EnrolmentState"/> in the <c>tg.enrol</c> cookie.</summary>
public sealed class EnrolmentCookie(IDataProtectionProvider dataProtection, TimeProvider time, IOptions<PortalOptions> options)
{
    public const string CookieName = "tg.enrol";
    private readonly IDataProtector _protector = dataProtection.CreateProtector("TokenGate.Portal.Enrolment.v1");

    public EnrolmentState Start(Guid userId, string inviteHash) =>
        new() { UserId = userId, InviteHash = inviteHash, ExpiresAt = time.GetUtcNow() + options.Value.EnrolmentTimeout };

    public void Write(HttpContext context, EnrolmentState state)
    {
        ArgumentNullException.ThrowIfNull(context);
        var payload = _protector.Protect(JsonSerializer.Serialize(state));
        context.Response.Cookies.Append(CookieName, payload, new CookieOptions
        {
            HttpOnly = true,
            Secure = context.Request.IsHttps,
            // Lax, not Strict: people open the invite from a mail client, and a browser withholds Strict
            // cookies on every request of a navigation that started on another site (this redirect included).
            SameSite = SameSiteMode.Lax,
            Path = "/",
            IsEssential = true,
        });
    }

    /// <summary>The state, or null when there is none, it was tampered with or it expired.</summary>
    public EnrolmentState? Read(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Request.Cookies.TryGetValue(CookieName, out var raw) || string.IsNullOrEmpty(raw)) return null;
        try
        {
            var state = JsonSerializer.Deserialize<EnrolmentState>(_protector.Unprotect(raw));
            return state is not null && state.ExpiresAt > time.GetUtcNow() ? state : null;
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or JsonException)
        {
            return null;
        }
    }

    public static void Clear(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Response.Cookies.Delete(CookieName, new CookieOptions { Path = "/", Secure = context.Request.IsHttps, HttpOnly = true, SameSite = SameSiteMode.Lax });
    }
}
