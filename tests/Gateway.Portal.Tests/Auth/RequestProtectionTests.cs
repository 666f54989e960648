using System.Net;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Portal.Tests.Auth;

/// <summary>Antiforgery on every form POST and the per-IP limiter on sign-in and enrolment.</summary>
public sealed class RequestProtectionTests
{
    [Fact]
    public async Task Every_page_refuses_a_post_without_an_antiforgery_token()
    {
        await using var h = await PortalHarness.StartAsync();
        // An admin, so the admin pages answer too (a non-admin gets 403 there before any antiforgery check).
        var user = await h.SeedEnrolledUserAsync("af-user", admin: true);
        using var client = await h.SignInAsync(user);
        var pages = h.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<PageActionDescriptor>() is not null)
            .Select(e => "/" + (e.RoutePattern.RawText ?? "").Replace("{token}", "some-token", StringComparison.Ordinal).Replace("{id:guid}", Guid.NewGuid().ToString(), StringComparison.Ordinal).TrimStart('/'))
            // The error page changes nothing and must also render for a re-executed POST, so it takes no token.
            .Where(p => !p.StartsWith("/status/", StringComparison.Ordinal))
            .Distinct().ToList();
        Assert.Contains("/signin", pages);
        Assert.Contains("/enrol", pages);
        Assert.Contains("/signout", pages);
        foreach (var page in pages)
        {
            using var r = await client.PostFormWithTokenAsync(page, [new("x", "y")], token: null);
            Assert.True(r.StatusCode == HttpStatusCode.BadRequest, $"POST {page} without a token answered {(int)r.StatusCode}");
            Assert.Contains("The form may have expired", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        // The session survived: a refused POST changed nothing.
        Assert.True(PortalPages.ShowsSignedIn(await client.GetPageAsync("/"), "af-user"));
    }

    [Fact]
    public async Task Unknown_addresses_get_a_readable_not_found_page()
    {
        await using var h = await PortalHarness.StartAsync();
        var user = await h.SeedEnrolledUserAsync("nf-user");
        using var client = await h.SignInAsync(user);
        using var r = await client.GetAsync("/no/such/page");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Contains("Page not found", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        using var anonymous = h.CreateClient();
        using var a = await anonymous.GetAsync("/no/such/page");
        Assert.Equal(HttpStatusCode.Redirect, a.StatusCode);
    }

    [Fact]
    public async Task Too_many_sign_in_posts_from_one_ip_get_a_429_page()
    {
        await using var h = await PortalHarness.StartAsync(new Dictionary<string, string?> { ["TokenGate:Portal:AuthPostsPerMinute"] = "3" });
        using var client = h.CreateClient();
        var token = await client.GetAntiforgeryTokenAsync("/signin");
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var r = await client.PostFormWithTokenAsync("/signin", [new("Login", "x"), new("Password", "y"), new("Code", "123456")], token);
            statuses.Add(r.StatusCode);
            if (r.StatusCode == HttpStatusCode.TooManyRequests)
            {
                Assert.True(r.Headers.RetryAfter is not null);
                Assert.Contains("Too many sign-in or enrolment attempts", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }
        Assert.Equal([HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests], statuses);
        // Enrolment posts share the budget; pages (GET) stay reachable.
        using var enrol = await client.PostFormWithTokenAsync("/enrol?handler=Password", [new("Password", "x")], token);
        Assert.Equal(HttpStatusCode.TooManyRequests, enrol.StatusCode);
        using var page = await client.GetAsync("/signin");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
    }
}
