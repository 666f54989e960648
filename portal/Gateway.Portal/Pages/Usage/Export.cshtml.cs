using Gateway.Portal.Auth;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Usage;

/// <summary>
/// <c>/usage/export.csv</c>: the usage table's rows for the same filters as CSV, streamed to the response as
/// PostgreSQL returns them. A page (not an endpoint) so the portal's authentication rules apply unchanged.
/// </summary>
public sealed class ExportModel(UsageCsvExport export, TimeProvider time) : PageModel
{
    public async Task<IActionResult> OnGetAsync(string? from, string? to, string? key, string? model, string? status, string? streamed, CancellationToken ct)
    {
        var filter = UsageFilter.Parse(from, to, key, model, status, streamed);
        var name = "tokengate-usage-" + time.GetUtcNow().UtcDateTime.ToString("yyyyMMdd-HHmmss", System.Globalization.CultureInfo.InvariantCulture) + ".csv";
        Response.ContentType = "text/csv; charset=utf-8";
        Response.Headers.ContentDisposition = "attachment; filename=\"" + name + "\"";
        Response.Headers.CacheControl = "no-store";
        await export.WriteAsync(User.UserId(), filter, Response.Body, ct);
        return new EmptyResult();
    }
}
