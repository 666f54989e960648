using Gateway.Core.Enforcement;
using Gateway.Core.Hosting;
using Gateway.Core.Keys;
using Gateway.Core.Metrics;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Security;
using Gateway.Proxy.Auth;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Endpoints;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;
using Gateway.Proxy.Telemetry;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy;

/// <summary>Builds the proxy host; tests and other hosts start it on real Kestrel.</summary>
/// <remarks>
/// Configuration: ConnectionStrings:Redis (default 127.0.0.1:56379), TokenGate:Pepper or
/// TokenGate:PepperFile, TokenGate:Credentials:* (<see cref="CredentialKeyConfiguration"/>), TokenGate:PricesDirectory (default config/prices), TokenGate:Redis:KeyPrefix
/// (default "tg:"), TokenGate:Proxy:* (<see cref="ProxyOptions"/>), TokenGate:LogFormat (text | json).
/// Serves the API on http://0.0.0.0:8080 unless --urls / ASPNETCORE_URLS say otherwise, and /metrics,
/// /healthz, /readyz on the management listener, http://0.0.0.0:8090 unless TokenGate:Management:Urls
/// says otherwise (see <see cref="Listeners"/>); /healthz and /readyz answer on both.
/// </remarks>
public static class ProxyApp
{
    public const string DefaultUrl = "http://0.0.0.0:8080";
    public const string DefaultManagementUrl = "http://0.0.0.0:8090";
    public const string DefaultRedis = "127.0.0.1:56379";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        configure?.Invoke(builder);
        var config = builder.Configuration;
        var problems = new ConfigurationProblems();
        // Lowest-precedence log levels (any appsettings, environment variable or argument overrides them).
        // ASP.NET Core logs several Information lines per request (request starting/finished, endpoint
        // executing/executed), which cost the proxy more CPU than its own work. While the hosting
        // diagnostics logger is enabled at any level, the hosting layer also starts an Activity and a
        // logging scope for every request, so that category is off entirely.
        LoggingDefaults.Configure(builder, problems, new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "None",
        });
        Listeners.Configure(builder, DefaultUrl, DefaultManagementUrl, problems);

        // Validate everything up front so a misconfigured pod fails at start with one message per problem.
        var options = problems.Try(() => config.GetSection(ProxyOptions.Section).Get<ProxyOptions>() ?? new ProxyOptions()) ?? new ProxyOptions();
        problems.AddRange(options.Validate());
        var outboxOptions = problems.Try(() => config.GetSection("TokenGate:UsageOutbox").Get<UsageOutboxOptions>() ?? new UsageOutboxOptions()) ?? new UsageOutboxOptions();
        problems.AddRange(outboxOptions.Validate());
        var leaseOptions = problems.Try(() => config.GetSection("TokenGate:Leases").Get<LeaseOptions>() ?? new LeaseOptions()) ?? new LeaseOptions();
        problems.AddRange(leaseOptions.Validate());
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // The proxy enforces its own (configurable) limit with a provider-shaped 413.
            k.Limits.MaxRequestBodySize = null;
            // A slowloris sending its head a byte at a time is cut off here; a slow body by RequestBodyTimeoutSeconds.
            if (options.RequestHeadersTimeoutSeconds > 0) k.Limits.RequestHeadersTimeout = TimeSpan.FromSeconds(options.RequestHeadersTimeoutSeconds);
        });
        var redisConnection = config.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(redisConnection)) redisConnection = DefaultRedis;
        var redisOptions = problems.Try(() => RespClientOptions.Parse(redisConnection), e => $"ConnectionStrings:Redis is not a valid Redis address: {e.Message}") ?? new RespClientOptions();
        var prefix = config["TokenGate:Redis:KeyPrefix"];
        if (string.IsNullOrEmpty(prefix)) prefix = ProjectionKeys.DefaultPrefix;
        var hasher = problems.Try(() => KeyHasher.FromConfiguration(config["TokenGate:Pepper"], config["TokenGate:PepperFile"]));
        var credentials = CredentialKeyConfiguration.Load(config, problems);
        var pricesDirectory = config["TokenGate:PricesDirectory"];
        if (string.IsNullOrEmpty(pricesDirectory)) pricesDirectory = Path.Combine("config", "prices");
        var prices = problems.Try(() => PriceTable.LoadLatest(pricesDirectory), e => $"TokenGate:PricesDirectory ('{pricesDirectory}'): {e.Message}");
        problems.ThrowIfAny("proxy");

        var services = builder.Services;
        services.AddSingleton(Options.Create(options));
        services.AddSingleton(new ProjectionKeys(prefix));
        services.AddSingleton(hasher!);
        services.AddSingleton(credentials!);
        services.AddSingleton(prices!);
        // Wall clock of the accounts' per-minute windows; a host (or test) may register its own first.
        services.TryAddSingleton(TimeProvider.System);
        // A single server, or a Redis Cluster with cluster=true in the connection string (RedisClients).
        services.AddSingleton<IRedisClient>(sp => RedisClients.Create(redisOptions, sp.GetRequiredService<ILoggerFactory>().CreateLogger<RespClient>()));
        services.AddSingleton(sp => new UsageOutbox(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(), outboxOptions,
            sp.GetRequiredService<ILogger<UsageOutbox>>()));
        // The default reservation lease (used for requests a quota lease hands over when it ends) is the proxy's own:
        // the longest possible exchange plus the margin.
        services.AddSingleton(sp => new Enforcer(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(), logger: sp.GetRequiredService<ILogger<Enforcer>>(),
            outbox: sp.GetRequiredService<UsageOutbox>(),
            options: new EnforcerOptions { DefaultLease = TimeSpan.FromSeconds(options.UpstreamTotalTimeoutSeconds + options.ReservationLeaseMarginSeconds) }));
        services.AddSingleton<PolicyCache>();
        if (leaseOptions.Enabled)
        {
            // Hot path v2: admission against quota leases (exact scripts near limits); disposed at shutdown after the
            // requests drained, which returns every lease.
            services.AddSingleton(sp =>
            {
                var book = new LeaseBook(sp.GetRequiredService<Enforcer>(), leaseOptions, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<LeaseBook>>());
                sp.GetRequiredService<PolicyCache>().Invalidated += (keyId, userId) => book.Invalidate(keyId, userId);
                return book;
            });
        }
        services.AddSingleton<UpstreamCatalog>();
        services.AddSingleton<UpstreamInvoker>();
        services.AddSingleton<ProxyMetrics>();
        services.AddSingleton(new ClientIpResolver(options));
        services.AddSingleton<OAuthRefreshRequests>();
        services.AddSingleton<ProxyRequestHandler>();
        services.AddSingleton<InfoEndpoints>();
        services.AddHostedService<InvalidationListener>();
        services.AddHostedService<AccountUsageSync>();
        services.AddHostedService<UsageOutboxService>();
        services.AddPrometheusExporter();

        var app = builder.Build();
        app.MapProxyEndpoints();
        app.MapFallback(ProxyEndpoints.UnmatchedAsync);
        return app;
    }
}
