using Gateway.Portal.Auth;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Ledger;

/// <summary>The balance history with a running balance; its last line is the dashboard's balance.</summary>
public sealed class IndexModel(LedgerQueries ledger) : PageModel
{
    /// <summary>Oldest first, as the running balance is computed; the view shows them newest first.</summary>
    public IReadOnlyList<LedgerLine> Lines { get; private set; } = [];
    public decimal Balance => Lines.Count == 0 ? 0 : Lines[^1].Balance;

    public async Task OnGetAsync(CancellationToken ct) => Lines = await ledger.HistoryAsync(User.UserId(), ct);
}
