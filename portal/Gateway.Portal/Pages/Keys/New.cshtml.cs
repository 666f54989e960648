using System.Globalization;
using Gateway.Portal.Auth;
using Gateway.Portal.Keys;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Keys;

/// <summary>Asks the operator for a new key (while the user is under maxKeys); the key is shown once on the reveal page.</summary>
public sealed class NewModel(KeyRequestClient keys, AuditLog audit) : PageModel
{
    [BindProperty] public string? Description { get; set; }
    /// <summary>yyyy-MM-dd from a date input; the key stops working at the start of that day (UTC).</summary>
    [BindProperty] public string? ExpiresOn { get; set; }
    /// <summary>Comma- or space-separated model globs; empty means every model the account allows.</summary>
    [BindProperty] public string? AllowedModels { get; set; }

    public KeyAllowance Allowance { get; private set; } = new(0, 0, null, false);
    public string? ErrorTemplate { get; private set; }
    public object[] ErrorArguments { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct) => Allowance = await keys.AllowanceAsync(User.UserId(), ct);

    public async Task<IActionResult> OnPostAsync(CancellationToken ct)
    {
        var userId = User.UserId();
        DateTimeOffset? expires = null;
        if (!string.IsNullOrWhiteSpace(ExpiresOn))
        {
            if (!DateOnly.TryParseExact(ExpiresOn.Trim(), "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day))
            {
                return await RefuseAsync(userId, "Enter the expiry date as YYYY-MM-DD.", [], ct);
            }
            expires = new DateTimeOffset(day.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
        }
        var models = (AllowedModels ?? "").Split([',', ' ', '\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var submitted = await keys.RequestCreateAsync(userId, Description, expires, models, ct);
        if (submitted.RequestId is not { } requestId) return await RefuseAsync(userId, submitted.ErrorTemplate!, submitted.ErrorArguments ?? [], ct);
        await audit.AppendAsync(userId, KeyAuditActions.Create, Description, ClientInfo.From(HttpContext), ct);
        return RedirectToPage("/Keys/Reveal", new { requestId });
    }

    private async Task<IActionResult> RefuseAsync(Guid userId, string template, object[] arguments, CancellationToken ct)
    {
        ErrorTemplate = template;
        ErrorArguments = arguments;
        Allowance = await keys.AllowanceAsync(userId, ct);
        Response.StatusCode = StatusCodes.Status400BadRequest;
        return Page();
    }
}
