using Gateway.Core.Resources;
using Gateway.Core.Json;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Projection;
using Gateway.Operator.Reconcilers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// The operator in Kubernetes mode: one client, informers for the three kinds and Secrets (always running,
/// so a standby has a warm cache), and the controllers, projection upkeep, ledger writer and reservation
/// sweeper, which run only on the replica holding the lease.
/// </summary>
public sealed class KubernetesOperator : IDisposable
{
    private readonly Controller<ApiKey> _apiKeys;
    private readonly Controller<UserQuota> _userQuotas;
    private readonly Controller<UpstreamAccount> _upstreams;

    public KubernetesOperator(KubernetesSourceOptions options, KubernetesClientConfiguration configuration, IServiceProvider services)
    {
        Options = options;
        var loggerFactory = services.GetRequiredService<ILoggerFactory>();
        var logger = loggerFactory.CreateLogger("Gateway.Operator.Kubernetes");
        var operatorOptions = services.GetRequiredService<IOptions<OperatorOptions>>().Value;
        var reconciler = services.GetRequiredService<TokenGateReconciler>();
        var resync = operatorOptions.ResyncInterval;

        Client = new KubernetesClient(configuration, loggerFactory);
        var host = Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod ? pod : Environment.MachineName;
        Identity = host + "-" + Guid.NewGuid().ToString("N")[..6];
        var leaseNamespace = options.LeaseNamespace ?? options.Namespace ?? configuration.Namespace;
        LeaderElectionOptions? election = options.LeaderElection
            ? new LeaderElectionOptions
            {
                LeaseName = options.LeaseName,
                LeaseNamespace = leaseNamespace,
                Identity = Identity,
                LeaseDuration = options.LeaseDuration,
                RenewDeadline = options.RenewDeadline,
                RetryPeriod = options.RetryPeriod,
                ReleaseOnCancel = options.ReleaseOnCancel,
            }
            : null;
        Manager = new ControllerManager(Client, election, loggerFactory);
        Source = new KubernetesResourceSource(Client);
        var events = new EventRecorder(Client, new EventRecorderOptions { Component = "tokengate-operator", Instance = Identity }, loggerFactory);
        Events = events;

        var scope = new InformerOptions { Namespace = options.Namespace };
        ApiKeyInformer = Manager.Informer(Client.Resource<ApiKey>(TokenGateResources.ApiKeys, TokenGateJson.Options), scope);
        UserQuotaInformer = Manager.Informer(Client.Resource<UserQuota>(TokenGateResources.UserQuotas, TokenGateJson.Options), scope);
        UpstreamAccountInformer = Manager.Informer(Client.Resource<UpstreamAccount>(TokenGateResources.UpstreamAccounts, TokenGateJson.Options), scope);
        SecretInformer = Manager.Informer(Client.Resource<Secret>(ResourceDefinition.Secrets), scope);
        ApiKeyInformer.Store.AddIndexer(ApiKeyReconciler.OwnerIndex, ApiKeyReconciler.IndexByOwner);
        UpstreamAccountInformer.Store.AddIndexer(UpstreamAccountReconciler.SecretIndex, UpstreamAccountReconciler.IndexBySecret);

        // Keys and users are reconciled on change (their watch, their owner, the status change feed, their own
        // timers), plus a full pass every FullResyncInterval; the small upstream pool keeps the short interval.
        var fullResync = operatorOptions.FullResyncInterval;
        UserQuotaReconciler = new UserQuotaReconciler(UserQuotaInformer, Source, events, reconciler,
            services.GetRequiredService<IDbContextFactory<TokenGateDbContext>>(), EnqueueKeysOf, fullResync);
        ApiKeyReconciler = new ApiKeyReconciler(ApiKeyInformer, Source, events, reconciler, fullResync, UserQuotaReconciler.IsPending);
        UpstreamAccountReconciler = new UpstreamAccountReconciler(UpstreamAccountInformer, SecretInformer, Source, events, reconciler, resync);

        _apiKeys = new Controller<ApiKey>(ApiKeyInformer, ApiKeyReconciler, new ControllerOptions<ApiKey>
        {
            Workers = options.Workers,
            // The rotate annotation does not bump the generation, so it must get through the filter.
            Filters = [new GenerationChangedFilter<ApiKey> { IncludeAnnotationChanges = true, AnnotationKeys = [TokenGateApi.RotateAnnotation] }],
        }, loggerFactory);
        // Deleting (or editing) the issued Secret reaches its ApiKey, which issues a new key. Its creation is the
        // ApiKey's own doing (its reconcile just wrote it), so it does not queue the key again.
        _apiKeys.Owns(SecretInformer, includeAdds: false);
        // Whether a key waits for its owner is read from the UserQuota cache (UserQuotaReconciler.IsPending).
        _apiKeys.Reads(UserQuotaInformer);

        _userQuotas = new Controller<UserQuota>(UserQuotaInformer, UserQuotaReconciler, new ControllerOptions<UserQuota>
        {
            Workers = options.Workers,
            Filters = [new GenerationChangedFilter<UserQuota>()],
        }, loggerFactory);
        // The invite Secret is owned by its UserQuota: deleting it brings a fresh invite (creating it is the UserQuota's own doing).
        _userQuotas.Owns(SecretInformer, includeAdds: false);

        _upstreams = new Controller<UpstreamAccount>(UpstreamAccountInformer, UpstreamAccountReconciler, new ControllerOptions<UpstreamAccount>
        {
            Workers = 1,
            // Labels feed upstream selectors in the projection.
            Filters = [new GenerationChangedFilter<UpstreamAccount> { IncludeLabelChanges = true }],
        }, loggerFactory);
        // A change of a referenced credentials Secret re-resolves the accounts that use it.
        _upstreams.Watches(SecretInformer, e => UpstreamAccountInformer.Store.ByIndex(UpstreamAccountReconciler.SecretIndex, e.Key).Select(u => u.Key));

        ProjectionMonitor = new ProjectionMonitor(this, services.GetRequiredService<ProjectionWriter>(), reconciler, options.ProjectionCheckInterval, logger,
            services.GetService<ProjectionSeeder>());
        StatusChangeFeed = new StatusChangeFeed(services.GetRequiredService<IDbContextFactory<TokenGateDbContext>>(),
            k => _apiKeys.Enqueue(k), k => _userQuotas.Enqueue(k), resync, TimeProvider.System, logger);
        Manager.Add(_userQuotas).Add(_upstreams).Add(_apiKeys).Add(ProjectionMonitor).Add(StatusChangeFeed);
        Manager.Add(new LeaderOnlyService("LedgerWriter", () => services.GetRequiredService<Ledger.LedgerWriter>()));
        Manager.Add(new LeaderOnlyService("ReservationSweeper", () => services.GetRequiredService<Ledger.ReservationSweeper>()));
        Manager.Add(new LeaderOnlyService("UsageBacklogMonitor", () => services.GetRequiredService<Telemetry.UsageBacklogMonitor>()));
        Manager.Add(new LeaderOnlyService("UserBudgetMonitor", () => services.GetRequiredService<Telemetry.UserBudgetMonitor>()));
        Manager.Add(new LeaderOnlyService("UpstreamHealthMonitor", () => services.GetRequiredService<Telemetry.UpstreamHealthMonitor>()));
        // A changed health verdict is written to the account's status by its reconcile.
        services.GetRequiredService<Telemetry.UpstreamHealthBoard>().Changed += EnqueueUpstream;
        Manager.Add(new LeaderOnlyService("KeyRequests", () => services.GetRequiredService<KeyRequests.KeyRequestService>()));
        if (services.GetService<IOptions<OAuth.OAuthRefreshOptions>>()?.Value.Enabled == true)
            Manager.Add(new LeaderOnlyService("OAuthRefresher", () => services.GetRequiredService<OAuth.OAuthRefresher>()));

        Log.Starting(logger, options.Namespace is null ? "all namespaces" : "namespace " + options.Namespace,
            election is null ? "disabled" : "enabled", leaseNamespace, options.LeaseName, Identity);
    }

    public KubernetesSourceOptions Options { get; }
    public KubernetesClient Client { get; }
    public ControllerManager Manager { get; }
    public KubernetesResourceSource Source { get; }
    public EventRecorder Events { get; }

    /// <summary>This replica's lease identity: pod name (or host name) plus a random suffix.</summary>
    public string Identity { get; }

    public Informer<ApiKey> ApiKeyInformer { get; }
    public Informer<UserQuota> UserQuotaInformer { get; }
    public Informer<UpstreamAccount> UpstreamAccountInformer { get; }
    public Informer<Secret> SecretInformer { get; }
    public ApiKeyReconciler ApiKeyReconciler { get; }
    public UserQuotaReconciler UserQuotaReconciler { get; }
    public UpstreamAccountReconciler UpstreamAccountReconciler { get; }
    public ProjectionMonitor ProjectionMonitor { get; }
    public StatusChangeFeed StatusChangeFeed { get; }

    public IReadOnlyList<IInformer> Informers => [ApiKeyInformer, UserQuotaInformer, UpstreamAccountInformer, SecretInformer];

    /// <summary>Reconciles run by this replica across all kinds.</summary>
    public long Reconciles => ApiKeyReconciler.Reconciles + UserQuotaReconciler.Reconciles + UpstreamAccountReconciler.Reconciles;

    /// <summary>Queues every cached object of every kind (projection rebuild).</summary>
    /// <summary>Waits until no UserQuota, UpstreamAccount or ApiKey is queued or being reconciled (delayed requeues do not
    /// count), or <paramref name="max"/> passed. True when drained.</summary>
    public async Task<bool> WaitForQueuesToDrainAsync(TimeSpan max, CancellationToken ct)
    {
        var deadline = DateTimeOffset.UtcNow + max;
        while (true)
        {
            if ((_userQuotas.Queue?.Outstanding ?? 0) + (_upstreams.Queue?.Outstanding ?? 0) + (_apiKeys.Queue?.Outstanding ?? 0) == 0) return true;
            if (DateTimeOffset.UtcNow >= deadline) return false;
            await Task.Delay(100, ct);
        }
    }

    public void EnqueueAll()
    {
        foreach (var e in UserQuotaInformer.Store.List()) _userQuotas.Enqueue(e.Key);
        foreach (var e in UpstreamAccountInformer.Store.List()) _upstreams.Enqueue(e.Key);
        foreach (var e in ApiKeyInformer.Store.List()) _apiKeys.Enqueue(e.Key);
    }

    /// <summary>Queues one UpstreamAccount (its OAuth refresh state changed).</summary>
    public void EnqueueUpstream(string key) => _upstreams.Enqueue(key);

    private void EnqueueKeysOf(string userQuotaKey)
    {
        foreach (var e in ApiKeyInformer.Store.ByIndex(ApiKeyReconciler.OwnerIndex, userQuotaKey)) _apiKeys.Enqueue(e.Key);
    }

    public void Dispose() => Client.Dispose();
}
