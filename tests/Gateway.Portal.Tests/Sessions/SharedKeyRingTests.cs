using System.Net;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests.Sessions;

/// <summary>The data-protection key ring in PostgreSQL is one ring for every replica.</summary>
public sealed class SharedKeyRingTests
{
    [Fact]
    public async Task Replicas_started_before_any_key_exists_end_up_with_one_key_and_read_each_others_cookies()
    {
        await using var a = await PortalHarness.StartAsync();
        await using var b = await a.StartPeerAsync();
        // B creates the first key (its antiforgery token needs one); A, which loaded an empty ring at start, must pick it up.
        using (var warm = b.CreateClient())
        {
            await warm.GetPageAsync("/signin");
        }
        var user = await a.SeedEnrolledUserAsync("early");
        using var client = await a.SignInAsync(user);
        using var onB = client.SharingCookiesWith(b.BaseAddress);
        using var r = await onB.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await using var db = a.CreateDbContext();
        Assert.Equal(1, db.DataProtectionKeys.Count());
        Assert.Contains("<key id=", db.DataProtectionKeys.Select(k => k.Xml).Single(), StringComparison.Ordinal);
    }
}
