using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Pages.Security;

/// <summary>Steps of a TOTP reset.</summary>
public enum TotpResetStep
{
    Verify,
    Confirm,
    Done,
}

/// <summary>
/// Reset the authenticator: password and a current code first; then a new secret (QR + key) that replaces the
/// old one only once a code from it is confirmed. The new secret travels between the steps as a data-protected,
/// user-bound, time-limited form field, so any replica can finish the reset and nothing is stored half-done.
/// </summary>
[AuthRateLimited]
public sealed class TotpModel(AccountSecurityService security, IOptions<PortalOptions> options) : PageModel
{
    [BindProperty] public string? Password { get; set; }
    [BindProperty] public string? Code { get; set; }
    [BindProperty] public string? Pending { get; set; }

    public TotpResetStep Step { get; private set; } = TotpResetStep.Verify;
    public bool Refused { get; private set; }
    public bool Expired { get; private set; }
    public string? SecretForDisplay { get; private set; }
    public string? QrDataUri { get; private set; }

    public void OnGet() => Response.Headers.CacheControl = "no-store";

    public async Task<IActionResult> OnPostBeginAsync(CancellationToken ct)
    {
        Response.Headers.CacheControl = "no-store";
        var started = await security.BeginTotpResetAsync(User.UserId(), Password, Code, ClientInfo.From(HttpContext), ct);
        Password = Code = null;
        if (started is not { } s)
        {
            Refused = true;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        ShowConfirm(s.Token, s.Secret);
        return Page();
    }

    public async Task<IActionResult> OnPostConfirmAsync(CancellationToken ct)
    {
        Response.Headers.CacheControl = "no-store";
        var userId = User.UserId();
        var secret = security.ReadPendingSecret(userId, Pending);
        if (secret is null)
        {
            Expired = true;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        var ok = await security.CompleteTotpResetAsync(userId, secret, Code, ClientInfo.From(HttpContext), ct);
        Code = null;
        if (!ok)
        {
            Refused = true;
            ShowConfirm(Pending!, secret);
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        Pending = null;
        Step = TotpResetStep.Done;
        return Page();
    }

    private void ShowConfirm(string token, string secret)
    {
        Step = TotpResetStep.Confirm;
        Pending = token;
        SecretForDisplay = TotpQr.DisplaySecret(secret);
        QrDataUri = TotpQr.DataUri(options.Value.TotpIssuer, User.Identity?.Name ?? "", secret);
    }
}
