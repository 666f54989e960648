using System.Net;
using Gateway.Core.Totp;
using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Auth;

public sealed class EnrolmentTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Enrolment_sets_password_and_totp_shows_ten_recovery_codes_once_and_spends_the_invite()
    {
        var invited = await _h.SeedInvitedUserAsync("erin");
        using var client = _h.CreateClient();

        var (status, passwordPage) = await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("Welcome, erin (display)", passwordPage, StringComparison.Ordinal);
        Assert.Contains("name=\"ConfirmPassword\"", passwordPage, StringComparison.Ordinal);

        var (_, totpPage) = await EnrolmentFlow.SubmitPasswordAsync(client, EnrolmentFlow.GoodPassword);
        var secret = EnrolmentFlow.ReadSecret(totpPage);
        Assert.True(Base32.TryDecode(secret, out var raw) && raw.Length == TotpService.SecretBytes);
        Assert.Contains("src=\"data:image/png;base64,", totpPage, StringComparison.Ordinal);
        // Nothing is stored before the code is confirmed.
        await using (var db = _h.CreateDbContext())
        {
            var before = await db.Users.AsNoTracking().SingleAsync(u => u.Id == invited.Id);
            Assert.Equal("Invited", before.Enrollment);
            Assert.Null(before.PasswordHash);
        }

        var (cStatus, done) = await EnrolmentFlow.ConfirmCodeAsync(client, EnrolmentFlow.CurrentCode(_h, secret));
        Assert.Equal(HttpStatusCode.OK, cStatus);
        var codes = EnrolmentFlow.ReadRecoveryCodes(done);
        Assert.Equal(10, codes.Count);
        Assert.Equal(10, codes.Distinct().Count());

        await using (var db = _h.CreateDbContext())
        {
            var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == invited.Id);
            Assert.Equal("Enrolled", user.Enrollment);
            Assert.Null(user.InviteTokenHash);
            Assert.NotNull(user.TotpLastStep);
            Assert.StartsWith("AQAAAA", user.PasswordHash, StringComparison.Ordinal); // Identity v3 PBKDF2 format
            Assert.DoesNotContain(EnrolmentFlow.GoodPassword, user.PasswordHash!, StringComparison.Ordinal);
            Assert.NotNull(user.TotpSecretProtected);
            Assert.DoesNotContain(secret, user.TotpSecretProtected!, StringComparison.OrdinalIgnoreCase);
            var stored = await db.RecoveryCodes.AsNoTracking().Where(r => r.UserId == invited.Id).Select(r => r.CodeHash).ToListAsync();
            Assert.Equal(10, stored.Count);
            Assert.All(codes, c => Assert.DoesNotContain(c, stored));
            Assert.All(codes, c => Assert.Contains(Credentials.HashRecoveryCode(invited.Id, c), stored));
            var actions = await db.AuditLog.AsNoTracking().Where(a => a.UserId == invited.Id).Select(a => a.Action).ToListAsync();
            Assert.Contains(AuditActions.Enrolled, actions);
            Assert.Contains(AuditActions.TotpEnabled, actions);
            Assert.Contains(AuditActions.RecoveryCodesGenerated, actions);
            Assert.Contains(AuditActions.PasswordSet, actions);
        }

        // The codes were shown once: the enrolment page has nothing more to show, the link says it was used.
        var (againStatus, again) = await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        Assert.Equal(HttpStatusCode.Gone, againStatus);
        Assert.Contains("This invitation was already used", again, StringComparison.Ordinal);
        var enrolPage = await client.GetAsync("/enrol");
        Assert.DoesNotContain(codes[0], await enrolPage.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // And the new account signs in.
        var seeded = new SeededUser(invited.Id, invited.Login, invited.Email, EnrolmentFlow.GoodPassword, secret, codes, false);
        using var signedIn = await _h.SignInAsync(seeded);
        Assert.True(PortalPages.ShowsSignedIn(await signedIn.GetPageAsync("/"), "erin"));
    }

    [Theory]
    [InlineData("short pass", "at least 12 characters")]
    [InlineData("my name is frank-the-tank", "must not contain your login name")]
    [InlineData("FRANK-THE-TANK rules ok", "must not contain your login name")]
    [InlineData("mail FRANKIE.B@CORP.EXAMPLE x", "must not contain your e-mail address")]
    [InlineData("frankie.b likes tea a lot", "must not contain your e-mail address")]
    [InlineData("password123456", "commonly used password")]
    [InlineData("P@ssw0rd1234", "commonly used password")]
    [InlineData("qwertyuiopasdfghjkl", "commonly used password")]
    public async Task Refuses_weak_passwords_with_the_reason(string password, string reason)
    {
        var invited = await _h.SeedInvitedUserAsync("frank-the-tank", email: "frankie.b@corp.example");
        using var client = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        var (status, html) = await EnrolmentFlow.SubmitPasswordAsync(client, password);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains(reason, html, StringComparison.Ordinal);
        Assert.DoesNotContain("totp-secret", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Refuses_a_password_whose_confirmation_differs()
    {
        var invited = await _h.SeedInvitedUserAsync("gina");
        using var client = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        var (status, html) = await EnrolmentFlow.SubmitPasswordAsync(client, EnrolmentFlow.GoodPassword, "something else entirely");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("do not match", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_confirmation_code_does_not_activate_totp()
    {
        var invited = await _h.SeedInvitedUserAsync("hank");
        using var client = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        var (_, totpPage) = await EnrolmentFlow.SubmitPasswordAsync(client, EnrolmentFlow.GoodPassword);
        var secret = EnrolmentFlow.ReadSecret(totpPage);
        var right = EnrolmentFlow.CurrentCode(_h, secret);
        var wrong = ((int.Parse(right, System.Globalization.CultureInfo.InvariantCulture) + 1) % 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
        var (status, html) = await EnrolmentFlow.ConfirmCodeAsync(client, wrong);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Contains("That code is not correct", html, StringComparison.Ordinal);
        // The same secret is offered again, and nothing was stored.
        Assert.Equal(secret, EnrolmentFlow.ReadSecret(html));
        await using var db = _h.CreateDbContext();
        var user = await db.Users.AsNoTracking().SingleAsync(u => u.Id == invited.Id);
        Assert.Equal("Invited", user.Enrollment);
        Assert.Null(user.TotpSecretProtected);
        Assert.NotNull(user.InviteTokenHash);
        // The right code still completes it.
        var (ok, _) = await EnrolmentFlow.ConfirmCodeAsync(client, right);
        Assert.Equal(HttpStatusCode.OK, ok);
    }

    [Fact]
    public async Task A_used_invite_says_so_even_in_a_second_browser_mid_enrolment()
    {
        var invited = await _h.SeedInvitedUserAsync("ivy");
        using var second = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(second, invited.InvitePath);
        using var first = _h.CreateClient();
        await EnrolmentFlow.EnrolAsync(_h, first, invited);

        var (status, html) = await EnrolmentFlow.SubmitPasswordAsync(second, EnrolmentFlow.GoodPassword);
        Assert.Equal(HttpStatusCode.Gone, status);
        Assert.Contains("This invitation was already used", html, StringComparison.Ordinal);
        var (linkStatus, link) = await EnrolmentFlow.OpenInviteAsync(_h.CreateClient(), invited.InvitePath);
        Assert.Equal(HttpStatusCode.Gone, linkStatus);
        Assert.Contains("This invitation was already used", link, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_expired_invite_says_so_and_cannot_be_completed()
    {
        var invited = await _h.SeedInvitedUserAsync("jack", validFor: TimeSpan.FromMinutes(20));
        using var client = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        var (_, totpPage) = await EnrolmentFlow.SubmitPasswordAsync(client, EnrolmentFlow.GoodPassword);
        var secret = EnrolmentFlow.ReadSecret(totpPage);

        _h.Time.Advance(TimeSpan.FromMinutes(21));
        var (status, html) = await EnrolmentFlow.ConfirmCodeAsync(client, EnrolmentFlow.CurrentCode(_h, secret));
        Assert.Equal(HttpStatusCode.Gone, status);
        Assert.Contains("This invitation has expired", html, StringComparison.Ordinal);
        var (linkStatus, link) = await EnrolmentFlow.OpenInviteAsync(_h.CreateClient(), invited.InvitePath);
        Assert.Equal(HttpStatusCode.Gone, linkStatus);
        Assert.Contains("This invitation has expired", link, StringComparison.Ordinal);
        await using var db = _h.CreateDbContext();
        Assert.Equal("Invited", (await db.Users.AsNoTracking().SingleAsync(u => u.Id == invited.Id)).Enrollment);
    }

    [Fact]
    public async Task An_unknown_invite_gets_a_page_that_explains_not_a_bare_404()
    {
        using var client = _h.CreateClient();
        using var r = await client.GetAsync("/invite/not-a-real-token");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        var html = await r.Content.ReadAsStringAsync();
        Assert.Contains("This invitation link is not valid", html, StringComparison.Ordinal);
        Assert.Contains("<html lang=\"en\"", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_enrolment_state_cannot_be_forged_or_kept_past_its_timeout()
    {
        using var forged = _h.CreateClient();
        forged.Cookies.Add(_h.BaseAddress, new Cookie(EnrolmentCookie.CookieName, "CfDJ8-not-a-real-protected-payload"));
        var html = await forged.GetPageAsync("/enrol");
        Assert.Contains("No enrolment in progress", html, StringComparison.Ordinal);

        var invited = await _h.SeedInvitedUserAsync("kate");
        using var client = _h.CreateClient();
        await EnrolmentFlow.OpenInviteAsync(client, invited.InvitePath);
        _h.Time.Advance(TimeSpan.FromMinutes(31));
        Assert.Contains("No enrolment in progress", await client.GetPageAsync("/enrol"), StringComparison.Ordinal);
    }
}
