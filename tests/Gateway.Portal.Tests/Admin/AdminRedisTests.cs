using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Portal.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Portal.Tests.Admin;

/// <summary>With ConnectionStrings:Redis the upstream page reads the proxies' shared per-minute account counters.</summary>
public sealed class AdminRedisTests
{
    [Fact]
    public async Task Upstreams_page_shows_this_minutes_requests_from_the_proxies_shared_counters()
    {
        var prefix = TestEnvironment.UniqueRedisPrefix();
        await using var h = await PortalHarness.StartAsync(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = TestEnvironment.Redis,
            ["TokenGate:Redis:KeyPrefix"] = prefix,
        });
        var admin = await h.SeedEnrolledUserAsync("root", admin: true);
        await using (var db = h.CreateDbContext())
        {
            var t = DateTimeOffset.UtcNow;
            db.UpstreamAccounts.Add(new UpstreamAccountRow { Id = Guid.NewGuid(), Namespace = "gw", Name = "acct", Provider = "openai", BaseUrl = "http://a", CreatedAt = t, UpdatedAt = t });
            await db.SaveChangesAsync();
        }
        var keys = new ProjectionKeys(prefix);
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        using var client = await h.SignInAsync(admin);

        // The counter key names the current UTC minute; retry across a minute boundary instead of racing it.
        var live = await Eventually.ReturnsAsync(async () =>
        {
            var key = keys.UpstreamUsage("gw/acct", h.Time.GetUtcNow().ToUnixTimeSeconds() / 60);
            await redis.ExecuteAsync("HSET", [key, "requests", "17", "tokens", "4200"]);
            await redis.ExpireAsync(key, TimeSpan.FromMinutes(5));
            var html = await client.GetPageAsync("/admin/upstreams");
            return html.Contains("data-live=\"17\"", StringComparison.Ordinal) ? html : null;
        }, "the live request count on the upstreams page");
        Assert.Contains("data-account=\"gw/acct\"", live, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_a_redis_connection_the_live_figures_are_unknown()
    {
        await using var h = await PortalHarness.StartAsync(new Dictionary<string, string?> { ["ConnectionStrings:Redis"] = "" });
        var admin = await h.SeedEnrolledUserAsync("root", admin: true);
        await using (var db = h.CreateDbContext())
        {
            var t = DateTimeOffset.UtcNow;
            db.UpstreamAccounts.Add(new UpstreamAccountRow { Id = Guid.NewGuid(), Namespace = "gw", Name = "acct", Provider = "openai", BaseUrl = "http://a", CreatedAt = t, UpdatedAt = t });
            await db.SaveChangesAsync();
        }
        using var client = await h.SignInAsync(admin);
        var html = await client.GetPageAsync("/admin/upstreams");
        Assert.Contains("data-live=\"unknown\"", html, StringComparison.Ordinal);
    }
}
