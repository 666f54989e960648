using System.Net;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Gateway.Portal.Tests.Auth;

/// <summary>A full enrolment and sign-in must not put a password, TOTP secret or code, recovery code, invite token or session cookie in any log line.</summary>
public sealed class LogSecrecyTests
{
    [Fact]
    public async Task Enrolment_sign_in_and_failures_log_no_secret_at_any_level()
    {
        await using var h = await PortalHarness.StartAsync(new PortalHarnessOptions
        {
            ConfigureBuilder = b => b.Logging.SetMinimumLevel(LogLevel.Trace),
        });
        var invited = await h.SeedInvitedUserAsync("logan");
        using var client = h.CreateClient();
        var (secret, codes) = await EnrolmentFlow.EnrolAsync(h, client, invited);

        // Failures too: a wrong password and a wrong-format code must not be echoed either.
        const string wrongPassword = "definitely-the-wrong-password-42";
        using (var bad = await client.PostFormAsync("/signin", [new("Login", invited.Login), new("Password", wrongPassword), new("Code", "999999")]))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
        }
        var user = new SeededUser(invited.Id, invited.Login, invited.Email, EnrolmentFlow.GoodPassword, secret, codes, false);
        using var signedIn = await h.SignInAsync(user);
        using (var recovery = h.CreateClient())
        using (var r = await recovery.PostFormAsync("/signin", [new("Login", invited.Login), new("Password", EnrolmentFlow.GoodPassword), new("Code", codes[0])]))
        {
            Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        }
        await signedIn.GetPageAsync("/");
        var cookie = signedIn.Cookies.GetCookies(h.BaseAddress)[Gateway.Portal.Auth.PortalAuthSetup.AuthCookieName]!.Value;

        var lines = h.Logs.Lines.ToList();
        Assert.NotEmpty(lines);
        Assert.Contains(lines, l => l.Contains("completed portal enrolment", StringComparison.Ordinal));
        var secrets = new List<string> { EnrolmentFlow.GoodPassword, wrongPassword, secret, invited.InviteToken, cookie, Uri.EscapeDataString(invited.InviteToken) };
        secrets.AddRange(codes);
        secrets.AddRange(codes.Select(c => c.Replace("-", "", StringComparison.Ordinal)));
        await using (var db = h.CreateDbContext())
        {
            secrets.AddRange(db.PortalSessions.Select(s => s.TokenHash).ToList());
        }
        foreach (var line in lines)
        {
            foreach (var s in secrets)
            {
                Assert.False(line.Contains(s, StringComparison.OrdinalIgnoreCase), $"a secret appears in a log line: {line.Replace(s, "<SECRET>", StringComparison.OrdinalIgnoreCase)}");
            }
        }
    }
}
