using System.Net;
using System.Security.Cryptography;
using System.Text;
using Gateway.Core.Storage;
using Gateway.Portal.Hosting;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Gateway.Portal.Tests;

public sealed class PortalShellTests : IAsyncLifetime
{
    private TestDatabase _db = null!;
    private WebApplication _app = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _db = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(_db.ConnectionString);
        _app = PortalApp.Build(["--urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", _db.ConnectionString]);
        await _app.StartAsync();
        var url = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(url) };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _app.DisposeAsync();
        await _db.DisposeAsync();
    }

    [Fact]
    public async Task Serves_health_and_a_sign_in_form_with_antiforgery()
    {
        Assert.Equal("ok", await _http.GetStringAsync("/healthz"));
        var home = await _http.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, home.StatusCode);
        Assert.Equal("/signin", home.Headers.Location!.OriginalString);
        var html = await _http.GetStringAsync("/signin");
        Assert.Contains("name=\"Password\"", html, StringComparison.Ordinal);
        Assert.Contains("name=\"Code\"", html, StringComparison.Ordinal);
        Assert.Contains("__RequestVerificationToken", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_post_without_the_antiforgery_token_is_rejected()
    {
        var r = await _http.PostAsync("/signin", new FormUrlEncodedContent(new Dictionary<string, string> { ["UserName"] = "demo", ["Password"] = "x", ["Code"] = "123456" }));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
    }

    [Fact]
    public async Task Invite_links_are_checked_against_the_stored_hash()
    {
        var token = "invite-token-for-test";
        await using (var db = StorageServiceCollectionExtensions.CreateContext(_db.ConnectionString))
        {
            db.Users.Add(new UserRow
            {
                Id = Guid.NewGuid(), Namespace = "default", Name = "demo", Login = "demo", Email = "d@example.com", DisplayName = "Demo User",
                InviteTokenHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token))),
                InviteExpiresAt = DateTimeOffset.UtcNow.AddDays(1), CreatedAt = DateTimeOffset.UtcNow, UpdatedAt = DateTimeOffset.UtcNow,
            });
            await db.SaveChangesAsync();
        }
        var ok = await _http.GetAsync("/invite/" + token);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Contains("Welcome, Demo User", await ok.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var bad = await _http.GetAsync("/invite/not-a-real-token");
        Assert.Equal(HttpStatusCode.NotFound, bad.StatusCode);
    }
}
