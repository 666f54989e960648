using System.Net;
using Gateway.Core.Totp;
using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Auth;

public sealed class SignInTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private static Task<HttpResponseMessage> PostSignInAsync(PortalClient client, string login, string password, string code) =>
        client.PostFormAsync("/signin", [new("Login", login), new("Password", password), new("Code", code)]);

    [Fact]
    public async Task Signs_in_with_login_or_email_password_and_totp_and_records_the_attempt()
    {
        var user = await _h.SeedEnrolledUserAsync("lena", email: "Lena.K@Example.test");
        using var client = _h.CreateClient();
        using var r = await PostSignInAsync(client, "lena.k@example.TEST", user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret));
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        Assert.Equal("/", r.Headers.Location!.OriginalString);
        Assert.True(PortalPages.ShowsSignedIn(await client.GetPageAsync("/"), "lena"));

        await using var db = _h.CreateDbContext();
        var ev = await db.SigninEvents.AsNoTracking().Where(e => e.UserId == user.Id).SingleAsync();
        Assert.Equal(SignInResults.Success, ev.Result);
        Assert.Equal("127.0.0.1", ev.Ip);
        Assert.Contains(await db.AuditLog.AsNoTracking().Where(a => a.UserId == user.Id).Select(a => a.Action).ToListAsync(), a => a == AuditActions.SignIn);
        Assert.Single(await db.PortalSessions.AsNoTracking().Where(s => s.UserId == user.Id).ToListAsync());
    }

    [Fact]
    public async Task Returns_to_a_local_return_url_but_never_to_another_site()
    {
        var user = await _h.SeedEnrolledUserAsync("mona");
        using var client = _h.CreateClient();
        using var challenge = await client.GetAsync("/keys");
        Assert.Equal(HttpStatusCode.Redirect, challenge.StatusCode);
        Assert.Contains("returnUrl=%2Fkeys", challenge.Headers.Location!.OriginalString, StringComparison.Ordinal);
        using var ok = await client.PostFormAsync("/signin?returnUrl=%2Fkeys",
            [new("Login", user.Login), new("Password", user.Password), new("Code", await _h.NextTotpCodeAsync(user.Id, user.TotpSecret))], formPage: "/signin");
        Assert.Equal("/keys", ok.Headers.Location!.OriginalString);

        using var other = _h.CreateClient();
        using var evil = await other.PostFormAsync("/signin?returnUrl=https%3A%2F%2Fevil.example%2F",
            [new("Login", user.Login), new("Password", user.Password), new("Code", await _h.NextTotpCodeAsync(user.Id, user.TotpSecret))], formPage: "/signin");
        Assert.Equal("/", evil.Headers.Location!.OriginalString);
    }

    [Fact]
    public async Task Wrong_password_wrong_code_or_unknown_login_get_one_message()
    {
        var user = await _h.SeedEnrolledUserAsync("nick");
        using var client = _h.CreateClient();
        var code = await _h.NextTotpCodeAsync(user.Id, user.TotpSecret);
        foreach (var (login, password, c) in new[] { ("nick", "wrong password here", code), ("nick", user.Password, "000000"), ("nobody", user.Password, code) })
        {
            using var r = await PostSignInAsync(client, login, password, c);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            Assert.Contains("The login, password or code is not correct.", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        await using var db = _h.CreateDbContext();
        var results = await db.SigninEvents.AsNoTracking().Select(e => e.Result).ToListAsync();
        Assert.Contains(SignInResults.BadPassword, results);
        Assert.Contains(SignInResults.BadCode, results);
        Assert.Contains(SignInResults.UnknownUser, results);
    }

    [Fact]
    public async Task A_recovery_code_signs_in_once()
    {
        var user = await _h.SeedEnrolledUserAsync("olga");
        using (var first = _h.CreateClient())
        {
            using var r = await PostSignInAsync(first, user.Login, user.Password, user.RecoveryCodes[3].ToUpperInvariant());
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        }
        using var second = _h.CreateClient();
        using var again = await PostSignInAsync(second, user.Login, user.Password, user.RecoveryCodes[3]);
        Assert.Equal(HttpStatusCode.Unauthorized, again.StatusCode);
        using var another = await PostSignInAsync(second, user.Login, user.Password, user.RecoveryCodes[4]);
        Assert.Equal(HttpStatusCode.Redirect, another.StatusCode);

        await using var db = _h.CreateDbContext();
        Assert.Equal(2, await db.RecoveryCodes.CountAsync(r => r.UserId == user.Id && r.UsedAt != null));
        Assert.Contains(SignInResults.SuccessRecoveryCode, await db.SigninEvents.Where(e => e.UserId == user.Id).Select(e => e.Result).ToListAsync());
        Assert.Contains(AuditActions.RecoveryCodeUsed, await db.AuditLog.Where(e => e.UserId == user.Id).Select(e => e.Action).ToListAsync());
    }

    [Fact]
    public async Task A_totp_code_is_accepted_once_even_across_two_replicas()
    {
        var user = await _h.SeedEnrolledUserAsync("paul");
        await using var peer = await _h.StartPeerAsync();
        var code = await _h.NextTotpCodeAsync(user.Id, user.TotpSecret);
        using var a = _h.CreateClient();
        using var first = await PostSignInAsync(a, user.Login, user.Password, code);
        Assert.Equal(HttpStatusCode.Redirect, first.StatusCode);
        using var b = peer.CreateClient();
        using var replay = await PostSignInAsync(b, user.Login, user.Password, code);
        Assert.Equal(HttpStatusCode.Unauthorized, replay.StatusCode);
        await using var db = _h.CreateDbContext();
        Assert.Contains(SignInResults.ReplayedCode, await db.SigninEvents.Where(e => e.UserId == user.Id).Select(e => e.Result).ToListAsync());
    }

    [Fact]
    public async Task Concurrent_sign_ins_with_one_code_let_exactly_one_through()
    {
        var user = await _h.SeedEnrolledUserAsync("quinn");
        await using var peer = await _h.StartPeerAsync();
        var code = await _h.NextTotpCodeAsync(user.Id, user.TotpSecret);
        var clients = Enumerable.Range(0, 6).Select(i => i % 2 == 0 ? _h.CreateClient() : peer.CreateClient()).ToList();
        var tokens = await Task.WhenAll(clients.Select(c => c.GetAntiforgeryTokenAsync("/signin")));
        var responses = await Task.WhenAll(clients.Select((c, i) => c.PostFormWithTokenAsync("/signin",
            [new("Login", user.Login), new("Password", user.Password), new("Code", code)], tokens[i])));
        Assert.Equal(1, responses.Count(r => r.StatusCode == HttpStatusCode.Redirect));
        foreach (var r in responses) r.Dispose();
        foreach (var c in clients) c.Dispose();
    }

    [Fact]
    public async Task Five_failures_lock_the_account_for_fifteen_minutes_even_for_the_right_credentials()
    {
        var user = await _h.SeedEnrolledUserAsync("rita");
        using var client = _h.CreateClient();
        for (var i = 0; i < 5; i++)
        {
            using var bad = await PostSignInAsync(client, user.Login, user.Password, "000000");
            Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        }
        using (var locked = await PostSignInAsync(client, user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, locked.StatusCode);
            Assert.Contains("this account is locked", await locked.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        _h.Time.Advance(TimeSpan.FromMinutes(14));
        using (var stillLocked = await PostSignInAsync(client, user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, stillLocked.StatusCode);
        }
        _h.Time.Advance(TimeSpan.FromMinutes(1.5));
        using (var ok = await PostSignInAsync(client, user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret)))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        }
        await using var db = _h.CreateDbContext();
        var results = await db.SigninEvents.Where(e => e.UserId == user.Id).Select(e => e.Result).ToListAsync();
        Assert.Equal(2, results.Count(r => r == SignInResults.LockedOut));
        Assert.Contains(AuditActions.LockedOut, await db.AuditLog.Where(e => e.UserId == user.Id).Select(e => e.Action).ToListAsync());
        var row = await db.Users.AsNoTracking().SingleAsync(u => u.Id == user.Id);
        Assert.Equal(0, row.FailedSignins);
        Assert.Null(row.LockedUntil);
    }

    [Fact]
    public async Task A_suspended_user_cannot_sign_in()
    {
        var user = await _h.SeedEnrolledUserAsync("sam");
        await using (var db = _h.CreateDbContext())
        {
            await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(u => u.SetProperty(x => x.Suspended, true));
        }
        using var client = _h.CreateClient();
        using var r = await PostSignInAsync(client, user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret));
        Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        Assert.Contains("This account is suspended", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admins_get_the_admin_role_and_the_admin_link()
    {
        var admin = await _h.SeedEnrolledUserAsync("tara", admin: true);
        using var client = await _h.SignInAsync(admin);
        Assert.Contains("href=\"/admin\"", await client.GetPageAsync("/"), StringComparison.Ordinal);
        var user = await _h.SeedEnrolledUserAsync("ugo");
        using var plain = await _h.SignInAsync(user);
        Assert.DoesNotContain("href=\"/admin\"", await plain.GetPageAsync("/"), StringComparison.Ordinal);
    }

    [Fact]
    public void Totp_codes_from_the_harness_match_the_core_generator()
    {
        var secret = TotpService.GenerateBase32Secret();
        var totp = new TotpService(_h.Time);
        Assert.True(totp.Verify(Base32.Decode(secret), totp.ComputeCode(Base32.Decode(secret))).Success);
    }
}
