using System.Net;
using Gateway.Core.Totp;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests.Auth;

/// <summary>Drives the enrolment pages the way a browser does (used by the enrolment and log tests).</summary>
internal static class EnrolmentFlow
{
    public const string GoodPassword = "violet staple canyon drum";

    /// <summary>Opens the invite link; returns the HTML of the page it leads to (/enrol on success).</summary>
    public static async Task<(HttpStatusCode Status, string Html)> OpenInviteAsync(PortalClient client, string invitePath)
    {
        using var r = await client.GetAsync(invitePath);
        if (r.StatusCode != HttpStatusCode.Redirect) return (r.StatusCode, await r.Content.ReadAsStringAsync());
        Assert.Equal("/enrol", r.Headers.Location!.OriginalString);
        using var page = await client.GetAsync("/enrol");
        return (page.StatusCode, await page.Content.ReadAsStringAsync());
    }

    public static async Task<(HttpStatusCode Status, string Html)> SubmitPasswordAsync(PortalClient client, string password, string? confirmation = null)
    {
        // The token comes from another page: a GET of /enrol would itself notice a spent invite and end the enrolment.
        using var r = await client.PostFormAsync("/enrol?handler=Password", [new("Password", password), new("ConfirmPassword", confirmation ?? password)], formPage: "/signin");
        if (r.StatusCode != HttpStatusCode.Redirect) return (r.StatusCode, await r.Content.ReadAsStringAsync());
        using var page = await client.GetAsync("/enrol");
        return (page.StatusCode, await page.Content.ReadAsStringAsync());
    }

    /// <summary>The base32 secret shown on the TOTP step (spaces between groups removed).</summary>
    public static string ReadSecret(string html) =>
        (PortalClient.ElementText(html, "totp-secret") ?? throw new InvalidOperationException("No TOTP secret on the page.")).Replace(" ", "", StringComparison.Ordinal);

    public static async Task<(HttpStatusCode Status, string Html)> ConfirmCodeAsync(PortalClient client, string code)
    {
        using var r = await client.PostFormAsync("/enrol?handler=Confirm", [new("Code", code)], formPage: "/signin");
        return (r.StatusCode, await r.Content.ReadAsStringAsync());
    }

    public static string CurrentCode(PortalHarness h, string secret) => new TotpService(h.Time).ComputeCode(Base32.Decode(secret));

    /// <summary>The recovery codes listed on the final step.</summary>
    public static IReadOnlyList<string> ReadRecoveryCodes(string html)
    {
        var list = System.Text.RegularExpressions.Regex.Match(html, "id=\"recovery-codes\"[^>]*>(.*?)</ul>", System.Text.RegularExpressions.RegexOptions.Singleline);
        Assert.True(list.Success, "no recovery codes on the page");
        return System.Text.RegularExpressions.Regex.Matches(list.Groups[1].Value, "<code>([^<]+)</code>").Select(m => m.Groups[1].Value).ToList();
    }

    /// <summary>A whole enrolment; returns the secret and the recovery codes.</summary>
    public static async Task<(string Secret, IReadOnlyList<string> RecoveryCodes)> EnrolAsync(PortalHarness h, PortalClient client, InvitedUser user, string password = GoodPassword)
    {
        var (status, _) = await OpenInviteAsync(client, user.InvitePath);
        Assert.Equal(HttpStatusCode.OK, status);
        var (pStatus, totpPage) = await SubmitPasswordAsync(client, password);
        Assert.True(pStatus == HttpStatusCode.OK, totpPage);
        var secret = ReadSecret(totpPage);
        var (cStatus, done) = await ConfirmCodeAsync(client, CurrentCode(h, secret));
        Assert.True(cStatus == HttpStatusCode.OK, done);
        return (secret, ReadRecoveryCodes(done));
    }
}
