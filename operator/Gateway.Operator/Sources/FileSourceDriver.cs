using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Operator.Projection;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Sources;

/// <summary>
/// Drives the reconcilers from a folder: a full pass at start, again on every file change (debounced),
/// at the resync interval, and whenever the Redis projection is found missing. Objects that disappear
/// from the folder are deleted (keys revoked, Secrets removed).
/// </summary>
public sealed partial class FileSourceDriver(
    FileResourceSource source,
    TokenGateReconciler reconciler,
    ProjectionWriter projection,
    Microsoft.Extensions.Options.IOptions<OperatorOptions> options,
    ILogger<FileSourceDriver> logger,
    ProjectionSeeder? seeder = null) : BackgroundService
{
    private readonly SemaphoreSlim _changed = new(0);
    // Passes and portal key requests take turns: a pass that loaded the folder before a portal manifest was
    // written would otherwise find the new key in PostgreSQL but not in its snapshot, and delete it.
    private readonly SemaphoreSlim _exclusive = new(1, 1);
    private readonly Dictionary<string, DateTimeOffset> _requeue = new(StringComparer.Ordinal);
    private int _passes;

    /// <summary>Completed reconcile passes (observability for tools and tests).</summary>
    public int Passes => Volatile.Read(ref _passes);

    /// <summary>The folder as the last pass read it (the OAuth refresher lists accounts from it).</summary>
    public ResourceSnapshot? LastSnapshot { get; private set; }

    /// <summary>Raised after each pass.</summary>
    public event Action<int>? PassCompleted;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // A single file-source operator always runs the controllers and the ledger writer: it is the leader.
        using var leadership = Gateway.Kubernetes.Runtime.OperatorMetrics.RegisterElector(static () => true);
        using var watcher = new FileSystemWatcher(source.Folder) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.DirectoryName };
        FileSystemEventHandler onChange = (_, _) => Signal();
        watcher.Changed += onChange;
        watcher.Created += onChange;
        watcher.Deleted += onChange;
        watcher.Renamed += (_, _) => Signal();
        watcher.EnableRaisingEvents = true;

        var resync = options.Value.ResyncInterval;
        var nextResync = DateTimeOffset.UtcNow + resync;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await PassAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogPassFailed(logger, e);
                nextResync = DateTimeOffset.UtcNow + TimeSpan.FromSeconds(2);
            }
            Interlocked.Increment(ref _passes);
            PassCompleted?.Invoke(_passes);

            // Wait for a change, a requeue, the projection check or the resync, whichever is first.
            while (!stoppingToken.IsCancellationRequested)
            {
                var now = DateTimeOffset.UtcNow;
                var due = nextResync;
                foreach (var t in _requeue.Values) if (t < due) due = t;
                var wait = due - now;
                if (wait > TimeSpan.FromSeconds(2)) wait = TimeSpan.FromSeconds(2);
                if (wait < TimeSpan.Zero) wait = TimeSpan.Zero;
                if (await _changed.WaitAsync(wait, stoppingToken))
                {
                    // Debounce editors that write a file in several steps.
                    await Task.Delay(150, stoppingToken);
                    while (_changed.CurrentCount > 0) await _changed.WaitAsync(stoppingToken);
                    break;
                }
                now = DateTimeOffset.UtcNow;
                if (now >= nextResync || _requeue.Values.Any(t => t <= now)) { nextResync = now + resync; break; }
                if (!await SafeHasEpochAsync(stoppingToken)) { LogProjectionMissing(logger); break; }
            }
        }
    }

    private async Task<bool> SafeHasEpochAsync(CancellationToken ct)
    {
        try { return await projection.HasEpochAsync(ct); }
        catch (Exception e) when (e is not OperationCanceledException) { return true; }
    }

    /// <summary>Asks for a pass soon (the portal key store wrote or removed a manifest outside the watched folder).</summary>
    public void RequestPass() => Signal();

    private void Signal()
    {
        if (_changed.CurrentCount == 0) _changed.Release();
    }

    /// <summary>Runs <paramref name="action"/> while no pass runs (portal key requests change what a pass reads).</summary>
    public async Task<T> RunExclusiveAsync<T>(Func<Task<T>> action, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(action);
        await _exclusive.WaitAsync(ct);
        try
        {
            return await action();
        }
        finally
        {
            _exclusive.Release();
        }
    }

    /// <summary>One full reconcile pass over the folder.</summary>
    public Task PassAsync(CancellationToken ct) => RunExclusiveAsync(async () =>
    {
        await PassCoreAsync(ct);
        return true;
    }, ct);

    private async Task PassCoreAsync(CancellationToken ct)
    {
        // No epoch: a first build, or Redis lost its data. The money goes back first (balances, key lifetimes,
        // budgets, from PostgreSQL), and the epoch is marked only once the whole projection is rewritten.
        string? epoch = null;
        if (!await projection.HasEpochAsync(ct))
            epoch = seeder is null ? await projection.BeginRebuildAsync(ct) : await seeder.SeedAsync(ct);
        var snap = source.Load();
        LastSnapshot = snap;
        foreach (var err in snap.Errors) LogInvalidManifest(logger, err);
        foreach (var notice in snap.Notices ?? []) LogSourceNotice(logger, notice);
        _requeue.Clear();
        var now = DateTimeOffset.UtcNow;

        // Users first: keys need their owner's row.
        var users = new HashSet<string>(StringComparer.Ordinal);
        foreach (var uq in snap.UserQuotas)
        {
            users.Add(uq.Key);
            var (outcome, status) = await reconciler.ReconcileUserAsync(uq, source, ct);
            await source.WriteStatusAsync(uq.Kind, uq.Metadata, status, ct);
            if (outcome.RequeueAfter is { } d) _requeue[uq.Key] = now + d;
        }

        var upstreams = new List<UpstreamProjection>();
        var uaNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ua in snap.UpstreamAccounts)
        {
            uaNames.Add(ua.Key);
            var (p, status) = await reconciler.ReconcileUpstreamAsync(ua, source, ct);
            if (p is not null) upstreams.Add(p);
            await source.WriteStatusAsync(ua.Kind, ua.Metadata, status, ct);
        }
        await reconciler.WriteUpstreamsAsync(upstreams, ct);

        var keys = new Dictionary<string, ApiKey>(StringComparer.Ordinal);
        foreach (var ak in snap.ApiKeys)
        {
            keys[ak.Key] = ak;
            var (outcome, status) = await reconciler.ReconcileApiKeyAsync(ak, source, ct);
            await source.WriteStatusAsync(ak.Kind, ak.Metadata, status, ct);
            if (outcome.RequeueAfter is { } d) _requeue["ak:" + ak.Key] = now + d;
        }

        // Deletions: live in PostgreSQL but gone from the folder (also while the operator was down).
        var live = await reconciler.ListLiveAsync(ct);
        foreach (var (k, secretName) in live.ApiKeys)
        {
            if (!keys.ContainsKey(k)) { var (ns, name) = Split(k); await reconciler.DeleteApiKeyAsync(ns, name, secretName, source, ct); }
        }
        foreach (var u in live.Users)
        {
            if (!users.Contains(u)) { var (ns, name) = Split(u); await reconciler.DeleteUserAsync(ns, name, source, ct); }
        }
        foreach (var u in live.Upstreams)
        {
            if (!uaNames.Contains(u)) { var (ns, name) = Split(u); await reconciler.DeleteUpstreamAsync(ns, name, ct); }
        }

        // A loss during this pass is not covered by it: the epoch stays missing and the next check rebuilds again.
        if (epoch is not null) await projection.MarkEpochAsync(epoch, ct);
    }

    private static (string, string) Split(string key)
    {
        var i = key.IndexOf('/', StringComparison.Ordinal);
        return (key[..i], key[(i + 1)..]);
    }

    [LoggerMessage(100, LogLevel.Error, "Reconcile pass failed; retrying")]
    private static partial void LogPassFailed(ILogger logger, Exception e);

    [LoggerMessage(101, LogLevel.Warning, "Skipping invalid manifest: {Error}")]
    private static partial void LogInvalidManifest(ILogger logger, string error);

    [LoggerMessage(103, LogLevel.Information, "File source: {Notice}")]
    private static partial void LogSourceNotice(ILogger logger, string notice);

    [LoggerMessage(102, LogLevel.Warning, "The Redis projection is missing (Redis restarted or was flushed); rebuilding it")]
    private static partial void LogProjectionMissing(ILogger logger);
}
