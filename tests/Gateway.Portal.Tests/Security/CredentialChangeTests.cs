using System.Net;
using Gateway.Core.Totp;
using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using static Gateway.Portal.Tests.Security.SecurityTestHelpers;

namespace Gateway.Portal.Tests.Security;

/// <summary>Change password, reset TOTP and regenerate recovery codes from the Security page.</summary>
public sealed class CredentialChangeTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task<List<string>> AuditActionsOfAsync(Guid userId)
    {
        await using var db = _h.CreateDbContext();
        return await db.AuditLog.AsNoTracking().Where(a => a.UserId == userId).Select(a => a.Action).ToListAsync();
    }

    [Fact]
    public async Task Changing_the_password_ends_other_sessions_keeps_this_one_and_the_old_password_stops_working()
    {
        var user = await _h.SeedEnrolledUserAsync("paula");
        await using var peer = await _h.StartPeerAsync();
        using var laptop = await _h.SignInAsync(user);
        using var phone = await peer.SignInAsync(user);
        const string newPassword = "violet harbour lantern 42";

        using var r = await laptop.PostFormAsync("/security/password",
            [new("CurrentPassword", user.Password), new("NewPassword", newPassword), new("ConfirmPassword", newPassword)]);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Contains("id=\"password-changed\"", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await AssertSignedOutAsync(phone);
        await AssertSignedInAsync(laptop);
        using (var old = await PostSignInAsync(_h.CreateClient(), user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret)))
        {
            Assert.NotEqual(HttpStatusCode.Redirect, old.StatusCode);
        }
        using var fresh = await _h.SignInAsync(user with { Password = newPassword });
        await AssertSignedInAsync(fresh);
        Assert.Contains(AuditActions.PasswordChanged, await AuditActionsOfAsync(user.Id));
        var activity = PortalClient.ElementText(await fresh.GetPageAsync("/security/activity"), "activity")!;
        Assert.Contains("Password changed", activity, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_password_change_needs_the_current_password_and_follows_the_enrolment_policy()
    {
        var user = await _h.SeedEnrolledUserAsync("quentin");
        using var phone = await _h.SignInAsync(user);
        using var client = await _h.SignInAsync(user);

        using (var wrong = await client.PostFormAsync("/security/password",
            [new("CurrentPassword", "not the password at all"), new("NewPassword", "violet harbour lantern 42"), new("ConfirmPassword", "violet harbour lantern 42")]))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrong.StatusCode);
            Assert.Contains("Your current password is not correct.", await wrong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        foreach (var (weak, message) in new[]
        {
            ("short one", "It must be at least 12 characters long."),
            ("my name is quentin!!", "It must not contain your login name."),
            ("password1234", "It is a commonly used password."),
        })
        {
            using var bad = await client.PostFormAsync("/security/password", [new("CurrentPassword", user.Password), new("NewPassword", weak), new("ConfirmPassword", weak)]);
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            Assert.Contains(message, WebUtility.HtmlDecode(await bad.Content.ReadAsStringAsync()), StringComparison.Ordinal);
        }
        using (var mismatch = await client.PostFormAsync("/security/password",
            [new("CurrentPassword", user.Password), new("NewPassword", "violet harbour lantern 42"), new("ConfirmPassword", "violet harbour lantern 43")]))
        {
            Assert.Equal(HttpStatusCode.BadRequest, mismatch.StatusCode);
        }
        // Nothing changed: the other session lives and the old password still signs in.
        await AssertSignedInAsync(phone);
        using var again = await _h.SignInAsync(user);
        Assert.DoesNotContain(AuditActions.PasswordChanged, await AuditActionsOfAsync(user.Id));
    }

    [Fact]
    public async Task Totp_reset_needs_password_and_current_code_then_a_code_from_the_new_secret_and_the_old_secret_stops_working()
    {
        var user = await _h.SeedEnrolledUserAsync("rita");
        using var client = await _h.SignInAsync(user);

        // Wrong password (right code) and wrong code (right password) are both refused.
        using (var r1 = await client.PostFormAsync("/security/totp?handler=Begin",
            [new("Password", "wrong wrong wrong"), new("Code", await _h.NextTotpCodeAsync(user.Id, user.TotpSecret))], formPage: "/security/totp"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r1.StatusCode);
            Assert.DoesNotContain("totp-secret", await r1.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var r2 = await client.PostFormAsync("/security/totp?handler=Begin", [new("Password", user.Password), new("Code", "000000")], formPage: "/security/totp"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, r2.StatusCode);
        }

        var code = await _h.NextTotpCodeAsync(user.Id, user.TotpSecret);
        using var begin = await client.PostFormAsync("/security/totp?handler=Begin", [new("Password", user.Password), new("Code", code)], formPage: "/security/totp");
        Assert.Equal(HttpStatusCode.OK, begin.StatusCode);
        var html = await begin.Content.ReadAsStringAsync();
        Assert.Contains("data:image/png;base64,", html, StringComparison.Ordinal);
        var newSecret = PortalClient.ElementText(html, "totp-secret")!.Replace(" ", "", StringComparison.Ordinal);
        var pending = InputValue(html, "Pending")!;
        Assert.NotEqual(user.TotpSecret, newSecret);

        // The same current code cannot start a second reset (spent).
        using (var replay = await client.PostFormAsync("/security/totp?handler=Begin", [new("Password", user.Password), new("Code", code)], formPage: "/security/totp"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, replay.StatusCode);
        }

        // Until confirmed, the old secret stays in place.
        string? before;
        await using (var db = _h.CreateDbContext()) before = await db.Users.Where(u => u.Id == user.Id).Select(u => u.TotpSecretProtected).SingleAsync();
        using (var wrongConfirm = await client.PostFormAsync("/security/totp?handler=Confirm",
            [new("Pending", pending), new("Code", await _h.NextTotpCodeAsync(user.Id, user.TotpSecret))], formPage: "/security/totp"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, wrongConfirm.StatusCode);
        }
        // A forged pending token is refused.
        using (var forged = await client.PostFormAsync("/security/totp?handler=Confirm", [new("Pending", "x" + pending), new("Code", "123456")], formPage: "/security/totp"))
        {
            Assert.Equal(HttpStatusCode.BadRequest, forged.StatusCode);
        }
        await using (var db = _h.CreateDbContext()) Assert.Equal(before, await db.Users.Where(u => u.Id == user.Id).Select(u => u.TotpSecretProtected).SingleAsync());

        using var confirm = await client.PostFormAsync("/security/totp?handler=Confirm",
            [new("Pending", pending), new("Code", await _h.NextTotpCodeAsync(user.Id, newSecret))], formPage: "/security/totp");
        Assert.Equal(HttpStatusCode.OK, confirm.StatusCode);
        Assert.Contains("id=\"totp-done\"", await confirm.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        using (var old = await PostSignInAsync(_h.CreateClient(), user.Login, user.Password, await _h.NextTotpCodeAsync(user.Id, user.TotpSecret)))
        {
            Assert.NotEqual(HttpStatusCode.Redirect, old.StatusCode);
        }
        using var withNew = await _h.SignInAsync(user with { TotpSecret = newSecret });
        await AssertSignedInAsync(withNew);
        var actions = await AuditActionsOfAsync(user.Id);
        Assert.Contains(AuditActions.TotpReset, actions);
        Assert.Contains(AuditActions.TotpResetRefused, actions);
        Assert.DoesNotContain(_h.Logs.Lines, l => l.Contains(newSecret, StringComparison.Ordinal) || l.Contains(user.Password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Regenerated_recovery_codes_replace_the_old_ones()
    {
        var user = await _h.SeedEnrolledUserAsync("sven");
        using var client = await _h.SignInAsync(user);

        using (var refused = await client.PostFormAsync("/security/recovery-codes", [new("Password", "not my password!")]))
        {
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        }
        using var r = await client.PostFormAsync("/security/recovery-codes", [new("Password", user.Password)]);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var codes = RecoveryCodes(await r.Content.ReadAsStringAsync());
        Assert.Equal(10, codes.Count);
        Assert.Empty(codes.Intersect(user.RecoveryCodes));

        using (var old = await PostSignInAsync(_h.CreateClient(), user.Login, user.Password, user.RecoveryCodes[0]))
        {
            Assert.NotEqual(HttpStatusCode.Redirect, old.StatusCode);
        }
        using (var ok = await PostSignInAsync(_h.CreateClient(), user.Login, user.Password, codes[3]))
        {
            Assert.Equal(HttpStatusCode.Redirect, ok.StatusCode);
        }
        // A current authenticator code also authorises a regeneration; the previous batch then stops working.
        using var byCode = await client.PostFormAsync("/security/recovery-codes", [new("Code", await _h.NextTotpCodeAsync(user.Id, user.TotpSecret))]);
        Assert.Equal(HttpStatusCode.OK, byCode.StatusCode);
        var third = RecoveryCodes(await byCode.Content.ReadAsStringAsync());
        using (var second = await PostSignInAsync(_h.CreateClient(), user.Login, user.Password, codes[4]))
        {
            Assert.NotEqual(HttpStatusCode.Redirect, second.StatusCode);
        }
        await using var db = _h.CreateDbContext();
        Assert.Equal(10, await db.RecoveryCodes.CountAsync(c => c.UserId == user.Id));
        Assert.Equal(2, (await AuditActionsOfAsync(user.Id)).Count(a => a == AuditActions.RecoveryCodesGenerated));
        Assert.DoesNotContain(_h.Logs.Lines, l => third.Any(c => l.Contains(c, StringComparison.Ordinal)));
    }
}
