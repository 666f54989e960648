using Gateway.Core.Enforcement;
using Gateway.Core.Keys;
using Gateway.Core.Metrics;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Proxy.Auth;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Endpoints;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;
using Gateway.Proxy.Telemetry;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy;

/// <summary>Builds the proxy host; tests and other hosts start it on real Kestrel.</summary>
/// <remarks>
/// Configuration: ConnectionStrings:Redis (default 127.0.0.1:56379), TokenGate:Pepper or
/// TokenGate:PepperFile, TokenGate:PricesDirectory (default config/prices), TokenGate:Redis:KeyPrefix
/// (default "tg:"), TokenGate:Proxy:* (<see cref="ProxyOptions"/>). Listens on http://0.0.0.0:8080
/// unless --urls / ASPNETCORE_URLS say otherwise.
/// </remarks>
public static class ProxyApp
{
    public const string DefaultUrl = "http://0.0.0.0:8080";
    public const string DefaultRedis = "127.0.0.1:56379";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);
        var config = builder.Configuration;
        // Lowest-precedence defaults (any appsettings, environment variable or argument overrides them).
        // ASP.NET Core logs several Information lines per request (request starting/finished, endpoint
        // executing/executed), which cost the proxy more CPU than its own work. While the hosting
        // diagnostics logger is enabled at any level, the hosting layer also starts an Activity and a
        // logging scope for every request, so that category is off entirely.
        config.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
                ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "None",
            },
        });
        if (string.IsNullOrEmpty(config["urls"]) && string.IsNullOrEmpty(config["ASPNETCORE_URLS"])) builder.WebHost.UseUrls(DefaultUrl);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // The proxy enforces its own (configurable) limit with a provider-shaped 413.
            k.Limits.MaxRequestBodySize = null;
        });

        // Validate everything up front so a misconfigured pod fails at start with a clear message.
        var options = config.GetSection(ProxyOptions.Section).Get<ProxyOptions>() ?? new ProxyOptions();
        var errors = options.Validate();
        var redisConnection = config.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(redisConnection)) redisConnection = DefaultRedis;
        RespClientOptions redisOptions;
        try { redisOptions = RespClientOptions.Parse(redisConnection); }
        catch (Exception ex) when (ex is FormatException or ArgumentException) { errors.Add($"ConnectionStrings:Redis is not a valid Redis address: {ex.Message}"); redisOptions = new RespClientOptions(); }
        var prefix = config["TokenGate:Redis:KeyPrefix"];
        if (string.IsNullOrEmpty(prefix)) prefix = ProjectionKeys.DefaultPrefix;
        KeyHasher? hasher = null;
        try { hasher = KeyHasher.FromConfiguration(config["TokenGate:Pepper"], config["TokenGate:PepperFile"]); }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or IOException) { errors.Add(ex.Message); }
        var pricesDirectory = config["TokenGate:PricesDirectory"];
        if (string.IsNullOrEmpty(pricesDirectory)) pricesDirectory = Path.Combine("config", "prices");
        PriceTable? prices = null;
        try { prices = PriceTable.LoadLatest(pricesDirectory); }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or System.Text.Json.JsonException) { errors.Add($"Price table: {ex.Message}"); }
        if (errors.Count > 0) throw new InvalidOperationException("The proxy configuration is invalid:" + Environment.NewLine + " - " + string.Join(Environment.NewLine + " - ", errors));

        var services = builder.Services;
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(new ProjectionKeys(prefix));
        services.AddSingleton(hasher!);
        services.AddSingleton(prices!);
        // Wall clock of the accounts' per-minute windows; a host (or test) may register its own first.
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IRedisClient>(sp => new RespClient(redisOptions, sp.GetRequiredService<ILoggerFactory>().CreateLogger<RespClient>()));
        services.AddSingleton(sp => new Enforcer(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(), logger: sp.GetRequiredService<ILogger<Enforcer>>()));
        services.AddSingleton<PolicyCache>();
        services.AddSingleton<UpstreamCatalog>();
        services.AddSingleton<UpstreamInvoker>();
        services.AddSingleton<ProxyMetrics>();
        services.AddSingleton(new ClientIpResolver(options));
        services.AddSingleton<ProxyRequestHandler>();
        services.AddSingleton<InfoEndpoints>();
        services.AddHostedService<InvalidationListener>();
        services.AddHostedService<AccountUsageSync>();
        services.AddPrometheusExporter();

        var app = builder.Build();
        app.MapProxyEndpoints();
        app.MapFallback(static ctx =>
        {
            var dialect = ctx.Request.Headers.ContainsKey("anthropic-version") ? ApiDialect.Anthropic : ApiDialect.OpenAI;
            return ProxyError.UnknownRoute.WriteAsync(ctx, dialect);
        });
        return app;
    }
}
