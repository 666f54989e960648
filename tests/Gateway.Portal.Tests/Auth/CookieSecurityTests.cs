using System.Net;
using Gateway.Portal.Auth;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests.Auth;

/// <summary>Flags of the sign-in cookie over HTTP, HTTPS and behind trusted and untrusted proxies.</summary>
public sealed class CookieSecurityTests
{
    /// <summary>Signs in with raw HttpClient requests and returns the Set-Cookie header of the auth cookie.</summary>
    private static async Task<string> SignInCookieHeaderAsync(PortalHarness h, string login, IReadOnlyDictionary<string, string>? headers = null)
    {
        var user = await h.SeedEnrolledUserAsync(login);
        using var client = h.CreateClient();
        var token = await client.GetAntiforgeryTokenAsync("/signin");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/signin")
        {
            Content = new FormUrlEncodedContent(
            [
                new("Login", user.Login), new("Password", user.Password),
                new("Code", await h.NextTotpCodeAsync(user.Id, user.TotpSecret)), new("__RequestVerificationToken", token),
            ]),
        };
        foreach (var (k, v) in headers ?? new Dictionary<string, string>()) request.Headers.Add(k, v);
        using var r = await client.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, r.StatusCode);
        return r.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(PortalAuthSetup.AuthCookieName + "=", StringComparison.Ordinal));
    }

    private static bool HasFlag(string setCookie, string flag) =>
        setCookie.Split(';').Select(p => p.Trim()).Any(p => p.Equals(flag, StringComparison.OrdinalIgnoreCase) || p.StartsWith(flag + "=", StringComparison.OrdinalIgnoreCase));

    [Fact]
    public async Task Over_http_the_cookie_is_httponly_and_samesite_but_not_secure()
    {
        await using var h = await PortalHarness.StartAsync();
        var cookie = await SignInCookieHeaderAsync(h, "c1");
        Assert.True(HasFlag(cookie, "httponly"), cookie);
        Assert.Contains("samesite=lax", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.False(HasFlag(cookie, "secure"), cookie);
    }

    [Fact]
    public async Task The_enrolment_and_antiforgery_cookies_are_httponly_and_samesite()
    {
        await using var h = await PortalHarness.StartAsync(new PortalHarnessOptions { Https = true });
        var invited = await h.SeedInvitedUserAsync("c0");
        using var client = h.CreateClient();
        using var r = await client.GetAsync(invited.InvitePath);
        var enrol = r.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(EnrolmentCookie.CookieName + "=", StringComparison.Ordinal));
        Assert.True(HasFlag(enrol, "httponly") && HasFlag(enrol, "secure"), enrol);
        // Lax: the invite is opened from a mail client, a cross-site navigation that a Strict cookie would not survive.
        Assert.Contains("samesite=lax", enrol, StringComparison.OrdinalIgnoreCase);
        using var page = await client.GetAsync("/signin");
        var af = page.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(PortalAuthSetup.AntiforgeryCookieName + "=", StringComparison.Ordinal));
        Assert.True(HasFlag(af, "httponly") && HasFlag(af, "secure"), af);
        Assert.Contains("samesite=strict", af, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Over_https_the_cookie_is_secure()
    {
        await using var h = await PortalHarness.StartAsync(new PortalHarnessOptions { Https = true });
        Assert.Equal("https", h.BaseAddress.Scheme);
        var cookie = await SignInCookieHeaderAsync(h, "c2");
        Assert.True(HasFlag(cookie, "secure"), cookie);
        Assert.True(HasFlag(cookie, "httponly"), cookie);
    }

    [Fact]
    public async Task X_forwarded_proto_from_an_untrusted_client_is_ignored()
    {
        await using var h = await PortalHarness.StartAsync();
        var cookie = await SignInCookieHeaderAsync(h, "c3", new Dictionary<string, string> { ["X-Forwarded-Proto"] = "https", ["X-Forwarded-For"] = "203.0.113.9" });
        Assert.False(HasFlag(cookie, "secure"), cookie);
        await using var db = h.CreateDbContext();
        Assert.All(db.SigninEvents.Select(e => e.Ip).ToList(), ip => Assert.Equal("127.0.0.1", ip));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.0/8")]
    public async Task X_forwarded_headers_from_a_trusted_proxy_make_the_cookie_secure_and_record_the_client_ip(string trusted)
    {
        await using var h = await PortalHarness.StartAsync(new Dictionary<string, string?> { ["TokenGate:Portal:TrustedProxies:0"] = trusted });
        var cookie = await SignInCookieHeaderAsync(h, "c4", new Dictionary<string, string> { ["X-Forwarded-Proto"] = "https", ["X-Forwarded-For"] = "203.0.113.9" });
        Assert.True(HasFlag(cookie, "secure"), cookie);
        await using var db = h.CreateDbContext();
        Assert.Contains("203.0.113.9", db.SigninEvents.Select(e => e.Ip).ToList());
    }

    [Fact]
    public async Task An_invalid_trusted_proxy_stops_the_portal_at_start_with_a_clear_message()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => PortalHarness.StartAsync(new Dictionary<string, string?> { ["TokenGate:Portal:TrustedProxies:0"] = "not-an-ip" }));
        Assert.Contains("'not-an-ip' is neither an IP address nor a CIDR network", e.ToString(), StringComparison.Ordinal);
    }
}
