using Gateway.Portal.Auth;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Usage;

/// <summary>The usage table: filters (GET, so every view has a link), totals, keyset pages, CSV link.</summary>
public sealed class IndexModel(UsageQueries usage) : PageModel
{
    [BindProperty(SupportsGet = true)] public string? From { get; set; }
    [BindProperty(SupportsGet = true)] public string? To { get; set; }
    [BindProperty(SupportsGet = true)] public string? Key { get; set; }
    [BindProperty(SupportsGet = true, Name = "model")] public string? ModelName { get; set; }
    [BindProperty(SupportsGet = true)] public string? Status { get; set; }
    [BindProperty(SupportsGet = true)] public string? Streamed { get; set; }
    /// <summary>Cursor of the next (older) page.</summary>
    [BindProperty(SupportsGet = true)] public string? After { get; set; }
    /// <summary>Cursor of the previous (newer) page.</summary>
    [BindProperty(SupportsGet = true)] public string? Before { get; set; }

    public UsageFilter Filter { get; private set; } = new();
    public UsagePage Rows { get; private set; } = new([], null, null);
    public UsageTotals Totals { get; private set; } = new(0, 0, 0, 0, 0, 0, 0);
    public IReadOnlyList<(Guid Id, string Name)> Keys { get; private set; } = [];
    public IReadOnlyList<string> Models { get; private set; } = [];

    public async Task OnGetAsync(CancellationToken ct)
    {
        var user = User.UserId();
        Filter = UsageFilter.Parse(From, To, Key, ModelName, Status, Streamed);
        var after = UsageCursor.Parse(After);
        Rows = await usage.PageAsync(user, Filter, after, after is null ? UsageCursor.Parse(Before) : null, UsageQueries.DefaultPageSize, ct);
        Totals = await usage.TotalsAsync(user, Filter, ct);
        (Keys, Models) = await usage.FilterChoicesAsync(user, ct);
    }

    /// <summary>A link to this page (or <paramref name="path"/>) with the filter and one extra pair.</summary>
    public string Link(string path = "/usage", string? name = null, string? value = null)
    {
        var q = Filter.ToQuery();
        if (name is not null) q[name] = value;
        return Microsoft.AspNetCore.WebUtilities.QueryHelpers.AddQueryString(path, q.Where(p => p.Value is not null));
    }
}
