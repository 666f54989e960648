using Gateway.Core.Enforcement;
using Gateway.Core.Hosting;
using Gateway.Core.Keys;
using Gateway.Core.Metrics;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Security;
using Gateway.Core.Storage;
using Gateway.Operator.KeyRequests;
using Gateway.Operator.Kubernetes;
using Gateway.Operator.Ledger;
using Gateway.Operator.OAuth;
using Gateway.Operator.Projection;
using Gateway.Operator.Reconcilers;
using Gateway.Operator.Sources;
using Gateway.Operator.Telemetry;
using Npgsql;

namespace Gateway.Operator.Hosting;

/// <summary>Composition of the operator host: sources, reconcilers, ledger writer, health and metrics on :8082.</summary>
public static class OperatorApp
{
    private static readonly Dictionary<string, string> SwitchMappings = new(StringComparer.Ordinal)
    {
        ["--source"] = "TokenGate:Source",
        ["--state-dir"] = "TokenGate:StateDir",
        ["--kubeconfig"] = "TokenGate:Kubeconfig",
        ["--namespace"] = "TokenGate:Namespace",
    };

    public const string DefaultUrl = "http://0.0.0.0:8082";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ApplicationName = typeof(OperatorApp).Assembly.GetName().Name });
        builder.Configuration.AddCommandLine(args, SwitchMappings);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        configure?.Invoke(builder);

        // Every problem is collected and reported at once (one line each) before anything starts.
        var cfg = builder.Configuration;
        var problems = new ConfigurationProblems();
        LoggingDefaults.Configure(builder, problems);
        var postgres = Required(cfg.GetConnectionString("Postgres"), "ConnectionStrings:Postgres is not set (e.g. Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate).", problems);
        if (postgres is not null) problems.Try(() => new NpgsqlConnectionStringBuilder(postgres), e => $"ConnectionStrings:Postgres is not a valid PostgreSQL connection string: {e.Message}");
        var redis = Required(cfg.GetConnectionString("Redis"), "ConnectionStrings:Redis is not set (e.g. 127.0.0.1:56379).", problems);
        var redisOptions = redis is null ? null : problems.Try(() => RespClientOptions.Parse(redis), e => $"ConnectionStrings:Redis is not a valid Redis address: {e.Message}");
        var source = Required(cfg["TokenGate:Source"], "TokenGate:Source is not set: pass --source dir:<folder> or --source kubernetes.", problems);
        if (source is not null && !source.StartsWith("dir:", StringComparison.Ordinal) && source != "kubernetes")
            problems.Add($"TokenGate:Source '{source}' is unknown: use dir:<folder> or kubernetes.");
        var hasher = problems.Try(() => KeyHasher.FromConfiguration(cfg["TokenGate:Pepper"], cfg["TokenGate:PepperFile"]));
        var credentials = CredentialKeyConfiguration.Load(cfg, problems);
        var operatorOptions = problems.Try(() => cfg.GetSection("TokenGate").Get<OperatorOptions>()) ?? new OperatorOptions();
        problems.AddRange(operatorOptions.Validate());
        var ledgerOptions = problems.Try(() => cfg.GetSection("TokenGate:Ledger").Get<LedgerOptions>()) ?? new LedgerOptions();
        problems.AddRange(ledgerOptions.Validate());
        var oauthOptions = problems.Try(() => cfg.GetSection("TokenGate:OAuth").Get<OAuthRefreshOptions>()) ?? new OAuthRefreshOptions();
        problems.AddRange(oauthOptions.Validate());
        var outboxOptions = problems.Try(() => cfg.GetSection("TokenGate:UsageOutbox").Get<UsageOutboxOptions>()) ?? new UsageOutboxOptions();
        problems.AddRange(outboxOptions.Validate());
        if (source == "kubernetes" && problems.Try(() => KubernetesSourceOptions.From(cfg)) is { } kubernetes)
        {
            problems.Try(() => Gateway.Kubernetes.Client.KubernetesClientConfiguration.Load(kubernetes.Kubeconfig),
                e => $"TokenGate:Kubeconfig (--kubeconfig): no usable cluster configuration: {e.Message}");
        }
        problems.ThrowIfAny("operator");

        var s = builder.Services;
        s.Configure<OperatorOptions>(cfg.GetSection("TokenGate"));
        s.Configure<LedgerOptions>(cfg.GetSection("TokenGate:Ledger"));
        s.AddSingleton(TimeProvider.System);
        s.AddSingleton(new ProjectionKeys(cfg["TokenGate:Redis:KeyPrefix"] ?? ProjectionKeys.DefaultPrefix));
        s.AddSingleton(NpgsqlDataSource.Create(postgres!));
        s.AddTokenGateStorage(postgres!);
        s.AddSingleton(hasher!);
        s.AddSingleton(credentials!);
        // A single server, or a Redis Cluster with cluster=true in the connection string (RedisClients).
        s.AddSingleton<IRedisClient>(sp => RedisClients.Create(redisOptions!, sp.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Redis")));
        s.AddSingleton<ProjectionWriter>();
        s.AddSingleton<ProjectionRebuildGate>();
        s.AddSingleton(sp => new ProjectionSeeder(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(),
            sp.GetRequiredService<ProjectionWriter>(), sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<ProjectionRebuildGate>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ProjectionSeeder>>()));
        s.AddSingleton<TokenGateReconciler>();
        s.AddSingleton<MigrationState>();
        s.AddPrometheusExporter();

        // Migrations first: hosted services start in registration order and this one blocks until done.
        s.AddHostedService(sp => new MigrationService(postgres!, sp.GetRequiredService<MigrationState>(), sp.GetRequiredService<ILogger<MigrationService>>()));

        // In Kubernetes mode several replicas run; the ledger writer and sweeper then run on the leader only.
        var leaderOnly = false;
        if (source!.StartsWith("dir:", StringComparison.Ordinal))
        {
            var folder = source["dir:".Length..];
            var stateDir = cfg["TokenGate:StateDir"] ?? ".data";
            s.AddSingleton(new FileResourceSource(folder, stateDir));
            s.AddSingleton<FileSourceDriver>();
            s.AddHostedService(sp => sp.GetRequiredService<FileSourceDriver>());
            s.AddSingleton<IPortalKeyStore, FilePortalKeyStore>();
        }
        else
        {
            s.AddKubernetesSource(cfg);
            s.AddSingleton<IPortalKeyStore>(sp => new KubernetesPortalKeyStore(sp.GetRequiredService<KubernetesOperator>()));
            leaderOnly = true;
        }

        s.AddSingleton(sp => new LedgerWriter(
            sp.GetRequiredService<IRedisClient>(),
            sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<ProjectionKeys>(),
            sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<LedgerOptions>>(),
            sp.GetRequiredService<ILogger<LedgerWriter>>(),
            sp.GetRequiredService<ProjectionRebuildGate>()));
        // The sweeper's charges go to the usage stream too, so they are held by this process's outbox like the proxy's.
        s.AddSingleton(sp => new UsageOutbox(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(), outboxOptions,
            sp.GetRequiredService<ILogger<UsageOutbox>>()));
        s.AddHostedService<UsageOutboxService>();
        s.AddSingleton(sp => new Enforcer(sp.GetRequiredService<IRedisClient>(), sp.GetRequiredService<ProjectionKeys>(),
            sp.GetRequiredService<TimeProvider>(), null, sp.GetRequiredService<ILogger<Enforcer>>(), sp.GetRequiredService<UsageOutbox>()));
        s.AddSingleton<ReservationSweeper>();
        s.AddSingleton<OperatorStateMetrics>();
        s.AddSingleton<UsageBacklogMonitor>();
        s.AddSingleton<UserBudgetMonitor>();
        s.AddSingleton<UpstreamHealthBoard>();
        s.AddSingleton<UpstreamHealthMonitor>();
        s.Configure<OAuthRefreshOptions>(cfg.GetSection("TokenGate:OAuth"));
        if (oauthOptions.Enabled) s.AddOAuthRefresh(fileSource: !leaderOnly);
        s.Configure<KeyRequestOptions>(cfg.GetSection("TokenGate:KeyRequests"));
        s.AddSingleton<KeyRequestProcessor>();
        s.AddSingleton<KeyRequestService>();
        if (!leaderOnly)
        {
            s.AddHostedService(sp => sp.GetRequiredService<KeyRequestService>());
            s.AddHostedService(sp => sp.GetRequiredService<LedgerWriter>());
            s.AddHostedService(sp => sp.GetRequiredService<ReservationSweeper>());
            s.AddHostedService(sp => sp.GetRequiredService<UsageBacklogMonitor>());
            s.AddHostedService(sp => sp.GetRequiredService<UserBudgetMonitor>());
            s.AddHostedService(sp => sp.GetRequiredService<UpstreamHealthMonitor>());
            if (oauthOptions.Enabled) s.AddHostedService(sp => sp.GetRequiredService<OAuthRefresher>());
        }

        var app = builder.Build();
        if (!leaderOnly)
        {
            // File source: a changed health verdict reaches the account's status with the next pass, at once.
            var driver = app.Services.GetRequiredService<FileSourceDriver>();
            app.Services.GetRequiredService<UpstreamHealthBoard>().Changed += _ => driver.RequestPass();
        }
        // Created now so that tokengate_operator_redis_up is there from the first scrape.
        app.Services.GetRequiredService<OperatorStateMetrics>();
        if (credentials!.ActiveKeyId is { } activeKey) CredentialLog.Encrypting(app.Logger, activeKey, string.Join(", ", credentials.KeyIds));
        else CredentialLog.Plaintext(app.Logger);
        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapPrometheusMetrics();
        app.MapGet("/readyz", (MigrationState m, IRedisClient r) =>
            m.Done && r.IsConnected ? Results.Text("ready") : Results.Text(m.Done ? "redis unavailable" : "migrating", statusCode: 503));
        return app;
    }

    private static string? Required(string? value, string problem, ConfigurationProblems problems)
    {
        if (!string.IsNullOrWhiteSpace(value)) return value;
        problems.Add(problem);
        return null;
    }
}

/// <summary>Whether the schema is up to date.</summary>
public sealed class MigrationState
{
    private volatile bool _done;
    public bool Done { get => _done; set => _done = value; }
}

/// <summary>Applies migrations at start-up, waiting for PostgreSQL if it is not up yet.</summary>
public sealed partial class MigrationService(string connectionString, MigrationState state, ILogger<MigrationService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            try
            {
                await StorageServiceCollectionExtensions.MigrateAsync(connectionString, cancellationToken);
                state.Done = true;
                LogMigrated(logger);
                return;
            }
            // Npgsql reports a connect timeout as a cancellation of its own, not ours: retry that too.
            catch (Exception e) when (!cancellationToken.IsCancellationRequested
                                      && e is NpgsqlException or TimeoutException or InvalidOperationException or OperationCanceledException)
            {
                LogWaiting(logger, e.Message, delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
            }
            catch (Exception e) when (cancellationToken.IsCancellationRequested && e is not OperationCanceledException)
            {
                // Shutting down mid-attempt: report it as the cancellation it is.
                throw new OperationCanceledException("Start-up was cancelled while waiting for PostgreSQL.", e, cancellationToken);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(300, LogLevel.Information, "Database schema is up to date")]
    private static partial void LogMigrated(ILogger logger);

    [LoggerMessage(301, LogLevel.Warning, "PostgreSQL is not reachable yet ({Message}); retrying in {DelayMs} ms")]
    private static partial void LogWaiting(ILogger logger, string message, double delayMs);
}
