using Gateway.Core.Totp;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Pages.Account;

/// <summary>The steps of an enrolment.</summary>
public enum EnrolStep
{
    /// <summary>No enrolment in progress (or it timed out), or the invite is no longer valid.</summary>
    Problem,
    Password,
    Totp,
    /// <summary>Enrolled: the recovery codes are on the page, once.</summary>
    Done,
}

/// <summary>Enrolment after the invite link: choose a password, then confirm an authenticator app, then keep the recovery codes.</summary>
[AllowAnonymous]
[AuthRateLimited]
public sealed class EnrolModel(EnrolmentService enrolment, EnrolmentCookie cookie, Credentials credentials, TimeProvider time, IOptions<PortalOptions> options) : PageModel
{
    [BindProperty] public string? Password { get; set; }
    [BindProperty] public string? ConfirmPassword { get; set; }
    [BindProperty] public string? Code { get; set; }

    public EnrolStep Step { get; private set; } = EnrolStep.Problem;
    public InviteLookup? Invite { get; private set; }
    public IReadOnlyList<PasswordProblem> PasswordProblems { get; private set; } = [];
    public bool CodeRejected { get; private set; }
    public string? SecretForDisplay { get; private set; }
    public string? QrDataUri { get; private set; }
    public IReadOnlyList<string> RecoveryCodes { get; private set; } = [];

    public async Task<IActionResult> OnGetAsync(CancellationToken ct)
    {
        var state = await LoadAsync(ct);
        if (state is null) return Page();
        Show(state);
        return Page();
    }

    public async Task<IActionResult> OnPostPasswordAsync(CancellationToken ct)
    {
        var state = await LoadAsync(ct);
        if (state is null) return Page();
        PasswordProblems = PasswordPolicy.Check(Password, ConfirmPassword, Invite!.Login, Invite.Email);
        if (PasswordProblems.Count > 0)
        {
            Password = ConfirmPassword = null;
            Step = EnrolStep.Password;
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        cookie.Write(HttpContext, state with
        {
            PasswordHash = credentials.HashPassword(Password!),
            TotpSecret = TotpService.GenerateBase32Secret(),
        });
        return Redirect("/enrol");
    }

    public async Task<IActionResult> OnPostConfirmAsync(CancellationToken ct)
    {
        var state = await LoadAsync(ct);
        if (state is null) return Page();
        if (state.PasswordHash is null || state.TotpSecret is null)
        {
            Show(state);
            return Page();
        }
        var check = new TotpService(time).Verify(Base32.Decode(state.TotpSecret), Code ?? "");
        Code = null;
        if (!check.Success)
        {
            CodeRejected = true;
            Show(state);
            Response.StatusCode = StatusCodes.Status400BadRequest;
            return Page();
        }
        var codes = await enrolment.CompleteAsync(state, check.TimeStep, ClientInfo.From(HttpContext), ct);
        EnrolmentCookie.Clear(HttpContext);
        if (codes is null)
        {
            Invite = await enrolment.LookupAsync(state.InviteHash, ct);
            Step = EnrolStep.Problem;
            Response.StatusCode = StatusCodes.Status410Gone;
            return Page();
        }
        RecoveryCodes = codes;
        Step = EnrolStep.Done;
        return Page();
    }

    /// <summary>The enrolment state if there is one and its invite is still valid; otherwise sets up the problem page.</summary>
    private async Task<EnrolmentState?> LoadAsync(CancellationToken ct)
    {
        var state = cookie.Read(HttpContext);
        if (state is null)
        {
            Step = EnrolStep.Problem;
            return null;
        }
        Invite = await enrolment.LookupAsync(state.InviteHash, ct);
        if (Invite.Status != InviteStatus.Valid || Invite.UserId != state.UserId)
        {
            EnrolmentCookie.Clear(HttpContext);
            Step = EnrolStep.Problem;
            Response.StatusCode = StatusCodes.Status410Gone;
            return null;
        }
        return state;
    }

    private void Show(EnrolmentState state)
    {
        if (state.PasswordHash is null || state.TotpSecret is null)
        {
            Step = EnrolStep.Password;
            return;
        }
        Step = EnrolStep.Totp;
        SecretForDisplay = TotpQr.DisplaySecret(state.TotpSecret);
        QrDataUri = TotpQr.DataUri(options.Value.TotpIssuer, Invite!.Login, state.TotpSecret);
    }
}
