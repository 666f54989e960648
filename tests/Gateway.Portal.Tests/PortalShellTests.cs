using System.Net;
using Gateway.Portal.Tests.Infrastructure;

namespace Gateway.Portal.Tests;

public sealed class PortalShellTests : IAsyncLifetime
{
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Serves_health_and_sends_anonymous_visitors_to_a_sign_in_form_with_antiforgery()
    {
        using var client = _h.CreateClient();
        Assert.Equal("ok", await client.Http.GetStringAsync("/healthz"));
        using var home = await client.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, home.StatusCode);
        Assert.StartsWith("/signin", home.Headers.Location!.PathAndQuery(), StringComparison.Ordinal);
        var html = await client.GetPageAsync("/signin");
        Assert.Contains("name=\"Password\"", html, StringComparison.Ordinal);
        Assert.Contains("name=\"Code\"", html, StringComparison.Ordinal);
        Assert.Contains("__RequestVerificationToken", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Static_assets_are_served_to_anonymous_visitors()
    {
        using var client = _h.CreateClient();
        using var css = await client.GetAsync("/css/site.css");
        Assert.Equal(HttpStatusCode.OK, css.StatusCode);
    }

    [Fact]
    public async Task Signed_in_users_see_the_home_page_with_the_layout()
    {
        var user = await _h.SeedEnrolledUserAsync("shell-user");
        using var client = await _h.SignInAsync(user);
        var html = await client.GetPageAsync("/");
        Assert.True(PortalPages.ShowsSignedIn(html, "shell-user"));
        Assert.Contains("href=\"/keys\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("href=\"/admin\"", html, StringComparison.Ordinal);
    }
}

internal static class UriTestExtensions
{
    /// <summary>Path and query of a Location header, relative or absolute.</summary>
    public static string PathAndQuery(this Uri uri) => uri.IsAbsoluteUri ? uri.PathAndQuery : uri.OriginalString;
}
