using System.Net;
using Gateway.Core.Hosting;
using Gateway.Core.Storage;
using Gateway.Portal.Hosting;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Portal.Tests.Hosting;

/// <summary>The portal serves /metrics on its management listener only; health and readiness on both.</summary>
public sealed class ManagementListenerTests : IAsyncLifetime
{
    private TestDatabase _db = null!;
    private WebApplication _app = null!;

    public async Task InitializeAsync()
    {
        _db = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(_db.ConnectionString);
        _app = PortalApp.Build(["--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", _db.ConnectionString]);
        await _app.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _db.DisposeAsync();
    }

    [Fact]
    public async Task Metrics_only_on_the_management_listener_health_and_readiness_on_both()
    {
        var listeners = _app.Services.GetRequiredService<Listeners>();
        using var pub = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = listeners.PublicUrls[0] };
        using var management = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = listeners.ManagementUrls[0] };
        Assert.NotEqual(pub.BaseAddress!.Port, management.BaseAddress!.Port);

        var metrics = await management.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.Contains("process_cpu_seconds_total", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        // The public listener has no /metrics (a 404, or the sign-in redirect the portal gives unknown paths).
        var publicMetrics = await pub.GetAsync("/metrics");
        Assert.NotEqual(HttpStatusCode.OK, publicMetrics.StatusCode);
        Assert.DoesNotContain("process_cpu_seconds_total", await publicMetrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        foreach (var client in new[] { pub, management })
        {
            Assert.Equal("ok", await client.GetStringAsync("/healthz"));
            Assert.Equal("ready", await client.GetStringAsync("/readyz"));
        }
        // Pages are for users: the management listener does not serve them.
        Assert.Equal(HttpStatusCode.OK, (await pub.GetAsync("/signin")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("/signin")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await management.GetAsync("/favicon.ico")).StatusCode);
    }

    [Fact]
    public async Task Not_ready_until_the_schema_is_migrated()
    {
        await using var fresh = await TestDatabase.CreateAsync();
        await using var app = PortalApp.Build(["--urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", fresh.ConnectionString]);
        await app.StartAsync();
        using var management = new HttpClient { BaseAddress = app.Services.GetRequiredService<Listeners>().ManagementUrls[0] };
        var r = await management.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        Assert.Contains("not migrated", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        await StorageServiceCollectionExtensions.MigrateAsync(fresh.ConnectionString);
        Assert.Equal("ready", await management.GetStringAsync("/readyz"));
    }

    [Fact]
    public async Task Not_ready_while_PostgreSQL_is_unreachable()
    {
        await using var app = PortalApp.Build(["--urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", "Host=127.0.0.1;Port=1;Username=postgres;Database=none;Timeout=1"]);
        await app.StartAsync();
        using var management = new HttpClient { BaseAddress = app.Services.GetRequiredService<Listeners>().ManagementUrls[0] };
        var r = await management.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        Assert.Contains("PostgreSQL", await r.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("ok", await management.GetStringAsync("/healthz"));
    }
}
