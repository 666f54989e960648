using System.Net;
using Gateway.Portal.Auth;
using Gateway.Portal.Sessions;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Sessions;

public sealed class SessionTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static async Task AssertSignedInAsync(PortalClient client, string login)
    {
        using var r = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.True(PortalPages.ShowsSignedIn(await r.Content.ReadAsStringAsync(), login));
    }

    private static async Task AssertSignedOutAsync(PortalClient client)
    {
        using var r = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.StartsWith("/signin", r.Headers.Location!.IsAbsoluteUri ? r.Headers.Location.PathAndQuery : r.Headers.Location.OriginalString, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sign_out_everywhere_on_one_replica_ends_every_session_on_the_other_at_once()
    {
        var user = await _h.SeedEnrolledUserAsync("vera");
        await using var peer = await _h.StartPeerAsync();
        using var laptop = await _h.SignInAsync(user);
        using var phone = await _h.SignInAsync(user);
        // The cookie issued by replica A is accepted by replica B: the data-protection keys are shared.
        using var laptopOnB = laptop.SharingCookiesWith(peer.BaseAddress);
        using var phoneOnB = phone.SharingCookiesWith(peer.BaseAddress);
        await AssertSignedInAsync(laptopOnB, "vera");
        await AssertSignedInAsync(phoneOnB, "vera");

        using var r = await laptop.PostFormAsync("/signout?handler=Everywhere", [], formPage: "/signout");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);

        await AssertSignedOutAsync(phoneOnB);
        await AssertSignedOutAsync(laptopOnB);
        await AssertSignedOutAsync(phone);
        await using var db = _h.CreateDbContext();
        Assert.Equal(0, await db.PortalSessions.CountAsync(s => s.UserId == user.Id && s.RevokedAt == null));
        Assert.Contains(AuditActions.SignOutEverywhere, await db.AuditLog.Where(a => a.UserId == user.Id).Select(a => a.Action).ToListAsync());
    }

    [Fact]
    public async Task Sign_out_ends_only_this_device_and_its_cookie_stays_dead_if_replayed()
    {
        var user = await _h.SeedEnrolledUserAsync("walt");
        await using var peer = await _h.StartPeerAsync();
        using var laptop = await _h.SignInAsync(user);
        using var phone = await _h.SignInAsync(user);
        var stolen = laptop.Cookies.GetCookies(_h.BaseAddress)[PortalAuthSetup.AuthCookieName]!.Value;

        using var r = await laptop.PostFormAsync("/signout", []);
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        await AssertSignedOutAsync(laptop);
        await AssertSignedInAsync(phone, "walt");

        // A copy of the old cookie is refused by every replica.
        using var thief = peer.CreateClient();
        thief.Cookies.Add(peer.BaseAddress, new Cookie(PortalAuthSetup.AuthCookieName, stolen));
        await AssertSignedOutAsync(thief);
    }

    [Fact]
    public async Task A_session_ends_after_the_idle_timeout_and_activity_keeps_it_alive()
    {
        var user = await _h.SeedEnrolledUserAsync("xena");
        using var active = await _h.SignInAsync(user);
        using var idle = await _h.SignInAsync(user);
        for (var i = 0; i < 3; i++)
        {
            _h.Time.Advance(TimeSpan.FromMinutes(20));
            await AssertSignedInAsync(active, "xena");
        }
        // 60 minutes have passed: the idle one (timeout 30 min) is gone, the active one still works.
        await AssertSignedOutAsync(idle);
        await AssertSignedInAsync(active, "xena");
    }

    [Fact]
    public async Task A_session_ends_at_its_absolute_lifetime_however_active()
    {
        await using var h = await PortalHarness.StartAsync(new Dictionary<string, string?>
        {
            ["TokenGate:Portal:SessionIdleTimeout"] = "00:30:00",
            ["TokenGate:Portal:SessionAbsoluteLifetime"] = "02:00:00",
        });
        var user = await h.SeedEnrolledUserAsync("yuri");
        using var client = await h.SignInAsync(user);
        for (var i = 0; i < 5; i++)
        {
            h.Time.Advance(TimeSpan.FromMinutes(20));
            await AssertSignedInAsync(client, "yuri");
        }
        h.Time.Advance(TimeSpan.FromMinutes(21)); // 2 h 1 min after sign-in, 21 min after the last request
        await AssertSignedOutAsync(client);
    }

    [Fact]
    public async Task Suspending_the_user_ends_their_sessions_on_the_next_request()
    {
        var user = await _h.SeedEnrolledUserAsync("zoe");
        using var client = await _h.SignInAsync(user);
        await AssertSignedInAsync(client, "zoe");
        await using (var db = _h.CreateDbContext())
        {
            await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.Suspended, true));
        }
        await AssertSignedOutAsync(client);
    }

    [Fact]
    public async Task A_role_change_in_gitops_reaches_a_live_session()
    {
        var user = await _h.SeedEnrolledUserAsync("abel");
        using var client = await _h.SignInAsync(user);
        Assert.DoesNotContain("href=\"/admin\"", await client.GetPageAsync("/"), StringComparison.Ordinal);
        await using (var db = _h.CreateDbContext())
        {
            await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.PortalRole, "admin"));
        }
        Assert.Contains("href=\"/admin\"", await client.GetPageAsync("/"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Last_seen_is_written_at_most_once_a_minute()
    {
        var user = await _h.SeedEnrolledUserAsync("bea");
        using var client = await _h.SignInAsync(user);
        async Task<DateTimeOffset> LastSeenAsync()
        {
            await using var db = _h.CreateDbContext();
            return await db.PortalSessions.Where(s => s.UserId == user.Id).Select(s => s.LastSeenAt).SingleAsync();
        }
        var first = await LastSeenAsync();
        await AssertSignedInAsync(client, "bea");
        Assert.Equal(first, await LastSeenAsync());
        _h.Time.Advance(SessionStore.TouchInterval + TimeSpan.FromSeconds(5));
        await AssertSignedInAsync(client, "bea");
        Assert.True(await LastSeenAsync() > first);
    }
}
