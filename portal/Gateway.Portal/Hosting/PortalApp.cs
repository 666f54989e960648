using Gateway.Core.Metrics;
using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Gateway.Portal.Localization;
using Gateway.Portal.Security;

namespace Gateway.Portal.Hosting;

/// <summary>Composition of the portal host (:8081).</summary>
public static class PortalApp
{
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var webRoot = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ApplicationName = typeof(PortalApp).Assembly.GetName().Name,
            WebRootPath = Directory.Exists(webRoot) ? webRoot : null,
        });
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls("http://0.0.0.0:8081");
        }
        // Request-start lines carry the path, and an invite link's path carries its token.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        configure?.Invoke(builder);
        var postgres = builder.Configuration.GetConnectionString("Postgres")
            ?? throw new InvalidOperationException("ConnectionStrings:Postgres is not set (e.g. Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate).");
        builder.Services.AddTokenGateStorage(postgres);
        builder.Services.AddPortalAuth(builder.Configuration, postgres);
        builder.Services.AddPortalLocalization();
        builder.Services.AddPortalSecurityAndAdmin(builder.Configuration);
        builder.Services.AddRazorPages().AddViewLocalization().AddDataAnnotationsLocalization();
        builder.Services.AddPrometheusExporter();

        var app = builder.Build();
        app.UseForwardedHeaders();
        app.UseSecurityHeaders();
        app.UseStaticFiles();
        app.UseRequestLocalization();
        app.UseRouting();
        app.UseRateLimiter();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();
        app.MapGet("/healthz", () => Results.Text("ok")).AllowAnonymous();
        app.MapPrometheusMetrics().AllowAnonymous();
        app.MapRazorPages();
        return app;
    }
}
