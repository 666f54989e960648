using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages;

/// <summary>The dashboard (placeholder until the usage pages arrive); signed-in users only (fallback policy).</summary>
public sealed class IndexModel : PageModel
{
    public void OnGet()
    {
    }
}
