using Gateway.Core.Metrics;
using Gateway.Core.Storage;

namespace Gateway.Portal.Hosting;

/// <summary>Composition of the portal host (:8081).</summary>
public static class PortalApp
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ApplicationName = typeof(PortalApp).Assembly.GetName().Name });
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls("http://0.0.0.0:8081");
        }
        configure?.Invoke(builder);
        var postgres = builder.Configuration.GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set (e.g. Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate).");
        builder.Services.AddTokenGateStorage(postgres);
        builder.Services.AddRazorPages();
        builder.Services.AddPrometheusExporter();
        builder.Services.AddAntiforgery(o => o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest);

        var app = builder.Build();
        app.UseStaticFiles();
        app.UseRouting();
        app.UseAntiforgery();
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapPrometheusMetrics();
        app.MapRazorPages();
        return app;
    }
}
