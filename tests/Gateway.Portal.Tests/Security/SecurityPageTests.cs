using System.Net;
using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using static Gateway.Portal.Tests.Security.SecurityTestHelpers;

namespace Gateway.Portal.Tests.Security;

/// <summary>Security page: sign-in history, active sessions and their sign-out, API use by IP, activity log.</summary>
public sealed class SecurityPageTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task History_lists_every_attempt_including_failures_with_ip_and_user_agent()
    {
        var user = await _h.SeedEnrolledUserAsync("hanna");
        using var other = _h.CreateClient();
        other.Http.DefaultRequestHeaders.UserAgent.ParseAdd("WrongPasswordBrowser/1.0");
        using (var bad = await PostSignInAsync(other, user.Login, user.Password + "x", "000000")) Assert.NotEqual(HttpStatusCode.Redirect, bad.StatusCode);
        using (var badCode = await PostSignInAsync(other, user.Login, user.Password, "12345")) Assert.NotEqual(HttpStatusCode.Redirect, badCode.StatusCode);
        using var client = _h.CreateClient();
        client.Http.DefaultRequestHeaders.UserAgent.ParseAdd("GoodBrowser/2.0");
        await _h.SignInAsync(user, client);

        var html = await client.GetPageAsync("/security");
        var history = PortalClient.ElementText(html, "signin-history")!;
        Assert.Contains("Wrong password", history, StringComparison.Ordinal);
        Assert.Contains("Wrong code", history, StringComparison.Ordinal);
        Assert.Contains("Signed in", history, StringComparison.Ordinal);
        Assert.Contains("WrongPasswordBrowser/1.0", history, StringComparison.Ordinal);
        Assert.Contains("GoodBrowser/2.0", history, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1", history, StringComparison.Ordinal);
        Assert.Contains("data-result=\"bad_password\"", html, StringComparison.Ordinal);
        // Another user's attempts are not listed.
        var stranger = await _h.SeedEnrolledUserAsync("stranger");
        using (var s = await PostSignInAsync(_h.CreateClient(), stranger.Login, "nope nope nope", "000000")) { }
        Assert.Equal(3, CountOccurrences(PortalClient.ElementText(await client.GetPageAsync("/security"), "signin-history")!, "127.0.0.1"));
    }

    [Fact]
    public async Task Sessions_show_device_and_mark_this_one_and_signing_out_another_device_ends_it_at_once_on_every_replica()
    {
        var user = await _h.SeedEnrolledUserAsync("ivan");
        await using var peer = await _h.StartPeerAsync();
        using var laptop = _h.CreateClient();
        laptop.Http.DefaultRequestHeaders.UserAgent.ParseAdd("Laptop/1.0");
        await _h.SignInAsync(user, laptop);
        using var phone = peer.CreateClient();
        phone.Http.DefaultRequestHeaders.UserAgent.ParseAdd("Phone/1.0");
        await peer.SignInAsync(user, phone);

        var html = await laptop.GetPageAsync("/security");
        var sessions = PortalClient.ElementText(html, "sessions")!;
        Assert.Contains("Laptop/1.0", sessions, StringComparison.Ordinal);
        Assert.Contains("Phone/1.0", sessions, StringComparison.Ordinal);
        Guid phoneId;
        await using (var db = _h.CreateDbContext())
        {
            phoneId = await db.PortalSessions.Where(s => s.UserId == user.Id && s.UserAgent == "Phone/1.0").Select(s => s.Id).SingleAsync();
            var laptopId = await db.PortalSessions.Where(s => s.UserId == user.Id && s.UserAgent == "Laptop/1.0").Select(s => s.Id).SingleAsync();
            // "This device" sits in the laptop's row only.
            var laptopRow = html[html.IndexOf("data-session=\"" + laptopId, StringComparison.Ordinal)..];
            Assert.Contains("This device", laptopRow[..laptopRow.IndexOf("</tr>", StringComparison.Ordinal)], StringComparison.Ordinal);
            var phoneRow = html[html.IndexOf("data-session=\"" + phoneId, StringComparison.Ordinal)..];
            Assert.DoesNotContain("This device", phoneRow[..phoneRow.IndexOf("</tr>", StringComparison.Ordinal)], StringComparison.Ordinal);
        }
        await AssertSignedInAsync(phone);

        using var r = await laptop.PostFormAsync("/security?handler=Revoke", [new("sessionId", phoneId.ToString())], formPage: "/security");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        await AssertSignedOutAsync(phone);
        await AssertSignedInAsync(laptop);
        Assert.DoesNotContain("Phone/1.0", PortalClient.ElementText(await laptop.GetPageAsync("/security"), "sessions")!, StringComparison.Ordinal);
        await using var db2 = _h.CreateDbContext();
        Assert.Contains(AuditActions.SessionRevoked, await db2.AuditLog.Where(a => a.UserId == user.Id).Select(a => a.Action).ToListAsync());
    }

    [Fact]
    public async Task Revoking_another_users_session_id_does_nothing()
    {
        var mallory = await _h.SeedEnrolledUserAsync("mallory");
        var victim = await _h.SeedEnrolledUserAsync("victim");
        using var m = await _h.SignInAsync(mallory);
        using var v = await _h.SignInAsync(victim);
        await using var db = _h.CreateDbContext();
        var victimSession = await db.PortalSessions.Where(s => s.UserId == victim.Id).Select(s => s.Id).SingleAsync();
        using var r = await m.PostFormAsync("/security?handler=Revoke", [new("sessionId", victimSession.ToString())], formPage: "/security");
        Assert.Equal("/security?done=gone", r.Headers.Location!.OriginalString);
        await AssertSignedInAsync(v);
    }

    [Fact]
    public async Task Sign_out_everywhere_ends_every_session_across_two_portal_instances()
    {
        var user = await _h.SeedEnrolledUserAsync("jonas");
        await using var peer = await _h.StartPeerAsync();
        using var a = await _h.SignInAsync(user);
        using var b = await peer.SignInAsync(user);
        using var aOnPeer = a.SharingCookiesWith(peer.BaseAddress);
        await AssertSignedInAsync(aOnPeer);
        await AssertSignedInAsync(b);

        using var r = await b.PostFormAsync("/security?handler=Everywhere", [], formPage: "/security");
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        await AssertSignedOutAsync(a);
        await AssertSignedOutAsync(aOnPeer);
        await AssertSignedOutAsync(b);
        await using var db = _h.CreateDbContext();
        Assert.Equal(0, await db.PortalSessions.CountAsync(s => s.UserId == user.Id && s.RevokedAt == null));
        Assert.Contains(AuditActions.SignOutEverywhere, await db.AuditLog.Where(x => x.UserId == user.Id).Select(x => x.Action).ToListAsync());
    }

    [Fact]
    public async Task Api_use_by_source_ip_sums_requests_and_tokens_per_ip_over_the_last_30_days()
    {
        var user = await _h.SeedEnrolledUserAsync("karl");
        var other = await _h.SeedEnrolledUserAsync("other");
        var now = _h.Time.GetUtcNow();
        await using (var db = _h.CreateDbContext())
        {
            async Task Add(Guid uid, string ip, DateTimeOffset at, long input, long output) =>
                await db.Database.ExecuteSqlInterpolatedAsync($"""
                    INSERT INTO usage_log (request_id, user_id, upstream, model, route, input_tokens, output_tokens, cost, price_version, started_at, duration_ms, status, created_at, client_ip)
                    VALUES ({Guid.NewGuid().ToString()}, {uid}, 'default/acct', 'gpt-test', '/v1/chat/completions', {input}, {output}, 0.01, 'v1', {at}, 10, 200, {at}, {ip})
                    """);
            await Add(user.Id, "203.0.113.7", now.AddDays(-1), 100, 50);
            await Add(user.Id, "203.0.113.7", now.AddHours(-2), 10, 5);
            await Add(user.Id, "198.51.100.9", now.AddDays(-3), 1, 1);
            await Add(user.Id, "192.0.2.99", now.AddDays(-40), 1000, 1000);   // older than 30 days
            await Add(other.Id, "203.0.113.7", now.AddHours(-1), 7777, 1);      // another user's
        }
        using var client = await _h.SignInAsync(user);
        var html = await client.GetPageAsync("/security/ips");
        var table = System.Text.RegularExpressions.Regex.Replace(PortalClient.ElementText(html, "ip-use")!, "\\s+", " ");
        Assert.Contains("203.0.113.7 2 165", table, StringComparison.Ordinal);
        Assert.Contains("198.51.100.9 1 2", table, StringComparison.Ordinal);
        Assert.DoesNotContain("192.0.2.99", table, StringComparison.Ordinal);
        Assert.DoesNotContain("7,777", table, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Activity_log_lists_the_users_own_actions_newest_first_and_paginates()
    {
        var user = await _h.SeedEnrolledUserAsync("lotte");
        var audit = (AuditLog)_h.Services.GetService(typeof(AuditLog))!;
        for (var i = 0; i < 30; i++) await audit.AppendAsync(user.Id, Gateway.Portal.Keys.KeyAuditActions.Rotate, "key-" + i, new ClientInfo("10.0.0.1", "test"), CancellationToken.None);
        await audit.AppendAsync(null, "system.thing", null, null, CancellationToken.None);
        using var client = await _h.SignInAsync(user);

        var page1 = await client.GetPageAsync("/security/activity");
        var rows1 = PortalClient.ElementText(page1, "activity")!;
        Assert.Contains("Key rotated", rows1, StringComparison.Ordinal);
        Assert.Contains("Signed in", rows1, StringComparison.Ordinal);   // the newest entry
        Assert.Contains("key-29", rows1, StringComparison.Ordinal);
        Assert.DoesNotContain("key-0 ", rows1 + " ", StringComparison.Ordinal);
        Assert.Contains("rel=\"next\"", page1, StringComparison.Ordinal);
        var page2 = await client.GetPageAsync("/security/activity?p=2");
        var rows2 = PortalClient.ElementText(page2, "activity")!;
        Assert.Contains("key-0", rows2, StringComparison.Ordinal);

        Assert.DoesNotContain("key-29", rows2, StringComparison.Ordinal);
        Assert.DoesNotContain("system.thing", page1 + page2, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Security_and_admin_pages_speak_simplified_chinese()
    {
        var admin = await _h.SeedEnrolledUserAsync("zhang", admin: true);
        using var client = await _h.SignInAsync(admin);
        client.Http.DefaultRequestHeaders.AcceptLanguage.ParseAdd("zh-CN");
        Assert.Contains("活动会话", await client.GetPageAsync("/security"), StringComparison.Ordinal);
        Assert.Contains("当前密码", await client.GetPageAsync("/security/password"), StringComparison.Ordinal);
        Assert.Contains("活动日志", await client.GetPageAsync("/security/activity"), StringComparison.Ordinal);
        Assert.Contains("本周期支出", await client.GetPageAsync("/admin"), StringComparison.Ordinal);
        Assert.Contains("上游账户", await client.GetPageAsync("/admin/upstreams"), StringComparison.Ordinal);
    }

    private static int CountOccurrences(string text, string what)
    {
        var n = 0;
        for (var i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + what.Length, StringComparison.Ordinal)) n++;
        return n;
    }
}
