using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Gateway.Portal.Keys;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Keys;

/// <summary>
/// The user's keys: figures and state per key, and rotate / disable / enable / delete as POST forms. Each action
/// becomes a request the operator carries out; a rotation continues on the one-time reveal page.
/// </summary>
public sealed class IndexModel(KeyRequestClient keys, AuditLog audit) : PageModel
{
    public IReadOnlyList<KeyListItem> Keys { get; private set; } = [];
    public KeyAllowance Allowance { get; private set; } = new(0, 0, null, false);

    /// <summary>A request to report on (after an action), and the key awaiting delete confirmation.</summary>
    [BindProperty(SupportsGet = true, Name = "request")] public Guid? ShownRequest { get; set; }
    [BindProperty(SupportsGet = true)] public Guid? Delete { get; set; }

    public KeyRequestRow? RequestState { get; private set; }
    public KeyListItem? DeleteCandidate { get; private set; }
    public string? ErrorTemplate { get; private set; }
    public object[] ErrorArguments { get; private set; } = [];

    /// <summary>Refresh while a request waits for the operator (no JavaScript needed).</summary>
    public bool Waiting => RequestState?.Status == KeyRequestStatus.Pending || Keys.Any(k => k.PendingRequest is not null);

    public async Task OnGetAsync(CancellationToken ct) => await LoadAsync(ct);

    public async Task<IActionResult> OnPostAsync(Guid id, string action, CancellationToken ct)
    {
        var userId = User.UserId();
        var submitted = await keys.RequestChangeAsync(userId, id, action, ct);
        if (submitted.RequestId is not { } requestId)
        {
            ErrorTemplate = submitted.ErrorTemplate;
            ErrorArguments = submitted.ErrorArguments ?? [];
            Response.StatusCode = StatusCodes.Status409Conflict;
            await LoadAsync(ct);
            return Page();
        }
        var key = (await keys.ListAsync(userId, ct)).FirstOrDefault(k => k.Id == id);
        await audit.AppendAsync(userId, KeyAuditActions.For(action), $"{key?.Name} ({key?.Prefix})", ClientInfo.From(HttpContext), ct);
        return action == KeyRequestKinds.Rotate
            ? RedirectToPage("/Keys/Reveal", new { requestId })
            : RedirectToPage("/Keys/Index", new { request = requestId });
    }

    private async Task LoadAsync(CancellationToken ct)
    {
        var userId = User.UserId();
        Keys = await keys.ListAsync(userId, ct);
        Allowance = await keys.AllowanceAsync(userId, ct);
        if (ShownRequest is { } r) RequestState = await keys.GetRequestAsync(userId, r, ct);
        if (Delete is { } d) DeleteCandidate = Keys.FirstOrDefault(k => k.Id == d && k.PortalCreated);
        // The Refresh header reloads the page while the operator works: no JavaScript needed.
        if (Waiting) Response.Headers["Refresh"] = "2";
    }
}
