using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Storage;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Pages;

/// <summary>Checks an invite link issued by the operator (only the token's SHA-256 is stored).</summary>
public sealed class InviteModel(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider? time = null) : PageModel
{
    public string? DisplayName { get; private set; }
    public DateTimeOffset? ExpiresAt { get; private set; }

    public async Task OnGetAsync(string token, CancellationToken ct)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));
        var now = (time ?? TimeProvider.System).GetUtcNow();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var user = await db.Users.SingleOrDefaultAsync(u => u.InviteTokenHash == hash && u.DeletedAt == null && u.Enrollment == "Invited", ct);
        if (user is null || user.InviteExpiresAt < now)
        {
            Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        DisplayName = user.DisplayName ?? user.Login;
        ExpiresAt = user.InviteExpiresAt;
    }
}
