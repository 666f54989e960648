using Gateway.Core.Hosting;
using Gateway.Core.Metrics;
using Gateway.Core.Storage;
using Gateway.Portal.Auth;
using Gateway.Portal.Keys;
using Gateway.Portal.Localization;
using Gateway.Portal.Security;
using Microsoft.EntityFrameworkCore;
using Gateway.Portal.Usage;

namespace Gateway.Portal.Hosting;

/// <summary>
/// Composition of the portal host: pages on the public listener (:8081, --urls / ASPNETCORE_URLS), /metrics on
/// the management listener (:8091, TokenGate:Management:Urls), /healthz and /readyz on both.
/// </summary>
public static class PortalApp
{
    public const string DefaultUrl = "http://0.0.0.0:8081";
    public const string DefaultManagementUrl = "http://0.0.0.0:8091";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var webRoot = Path.Combine(AppContext.BaseDirectory, "wwwroot");
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ApplicationName = typeof(PortalApp).Assembly.GetName().Name,
            WebRootPath = Directory.Exists(webRoot) ? webRoot : null,
        });
        configure?.Invoke(builder);
        var problems = new ConfigurationProblems();
        LoggingDefaults.Configure(builder, problems);
        // Request-start lines and some debug lines carry the request path, and an invite link's path carries its token.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        // MVC traces handler arguments: these categories are pinned at Information.
        builder.Logging.AddFilter("Microsoft.AspNetCore.StaticFiles", LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore.Routing", LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore.Mvc", LogLevel.Information);
        builder.Logging.AddFilter("Microsoft.AspNetCore.HttpLogging", LogLevel.None);
        Listeners.Configure(builder, DefaultUrl, DefaultManagementUrl, problems);
        var postgres = builder.Configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(postgres)) problems.Add("ConnectionStrings:Postgres is not set (e.g. Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate).");
        else problems.Try(() => new Npgsql.NpgsqlConnectionStringBuilder(postgres), e => $"ConnectionStrings:Postgres is not a valid PostgreSQL connection string: {e.Message}");
        problems.ThrowIfAny("portal");

        builder.Services.AddTokenGateStorage(postgres!);
        builder.Services.AddPortalAuth(builder.Configuration, postgres!);
        builder.Services.AddPortalKeys();
        builder.Services.AddPortalLocalization();
        builder.Services.AddPortalUsage(postgres!);
        builder.Services.AddPortalSecurityAndAdmin(builder.Configuration);
        builder.Services.AddRazorPages().AddViewLocalization().AddDataAnnotationsLocalization();
        builder.Services.AddPrometheusExporter();

        var app = builder.Build();
        app.UseForwardedHeaders();
        if (!app.Environment.IsDevelopment()) app.UseExceptionHandler("/status/500");
        // Error statuses without a body of their own (a stale form's 400, 403, 404) get a readable page.
        app.UseStatusCodePagesWithReExecute("/status/{0}");
        app.UseSecurityHeaders();
        app.UseStaticFiles();
        app.UseRequestLocalization();
        app.UseRouting();
        app.UseRateLimiter();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();
        app.MapManagementEndpoints(PostgresReadinessAsync);
        app.MapRazorPages();
        return app;
    }

    // Ready while PostgreSQL answers with the schema migrated (the operator migrates it): every page needs both.
    private static async ValueTask<Readiness> PostgresReadinessAsync(HttpContext context)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await using var db = await context.RequestServices.GetRequiredService<IDbContextFactory<TokenGateDbContext>>().CreateDbContextAsync(timeout.Token);
            if (!await db.Database.CanConnectAsync(timeout.Token)) return Readiness.No("PostgreSQL is not reachable");
            return (await db.Database.GetPendingMigrationsAsync(timeout.Token)).Any()
                ? Readiness.No("the database schema is not migrated yet (the operator migrates it at start)")
                : Readiness.Yes;
        }
        catch (OperationCanceledException)
        {
            return Readiness.No("PostgreSQL did not answer within 2 s");
        }
    }
}
