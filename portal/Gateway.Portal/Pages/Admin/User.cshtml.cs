using Gateway.Core.Storage;
using Gateway.Portal.Admin;
using Gateway.Portal.Auth;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages.Admin;

/// <summary>One user for admins: figures, keys, and the kubectl commands to grant credit, suspend and rotate keys.</summary>
[Authorize(Policy = PortalClaims.AdminPolicy)]
public sealed class UserModel(AdminQueries queries, TimeProvider time) : PageModel
{
    public AdminUser? Target { get; private set; }
    public IReadOnlyList<ApiKeyRow> Keys { get; private set; } = [];
    public string GrantCommand { get; private set; } = "";
    public string SuspendCommand { get; private set; } = "";

    public async Task<IActionResult> OnGetAsync(Guid id, CancellationToken ct)
    {
        Target = await queries.UserAsync(id, ct);
        if (Target is null) return NotFound();
        Keys = await queries.KeysOfAsync(id, ct);
        GrantCommand = KubectlCommands.GrantCredit(Target.Namespace, Target.Name, KubectlCommands.NewGrantId(time.GetUtcNow()), 10m, "Top-up");
        SuspendCommand = KubectlCommands.Suspend(Target.Namespace, Target.Name, suspended: Target.State != "suspended");
        return Page();
    }
}
