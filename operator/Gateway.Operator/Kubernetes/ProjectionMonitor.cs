using System.Globalization;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Projection;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// Leader-only upkeep of what no single object event covers: at the start of each term, objects that
/// PostgreSQL still holds but the cluster no longer has (deleted while no operator ran) are cleaned up and
/// the upstream list is rewritten; afterwards, if the Redis epoch key disappears (Redis flushed or
/// restarted empty), everything is reconciled again to rebuild the projection.
/// </summary>
public sealed class ProjectionMonitor(KubernetesOperator op, ProjectionWriter projection, TokenGateReconciler reconciler, TimeSpan interval, ILogger logger,
    ProjectionSeeder? seeder = null) : IController
{
    public string Name => "ProjectionMonitor";

    /// <summary>How many times the projection was found missing and rebuilt.</summary>
    public int Rebuilds => Volatile.Read(ref _rebuilds);

    private int _rebuilds;

    // Longest a rebuild waits for the controllers to reconcile everything before it marks the projection complete anyway.
    private static readonly TimeSpan RebuildWait = TimeSpan.FromMinutes(5);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        foreach (var i in op.Informers) await i.WaitForSyncAsync(cancellationToken);
        var swept = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var termStart = !swept;
                if (!swept)
                {
                    await SweepOrphansAsync(cancellationToken);
                    await op.UpstreamAccountReconciler.WriteUpstreamListAsync(cancellationToken);
                    swept = true;
                }
                // No epoch: a first build, or Redis lost its data (also while no leader watched).
                if (!await projection.HasEpochAsync(cancellationToken))
                {
                    if (!termStart)
                    {
                        Log.ProjectionMissing(logger);
                        Interlocked.Increment(ref _rebuilds);
                    }
                    // The money goes back first; then every object is reconciled again (on top of the term's own first
                    // pass, which may have run before the loss), and the projection is complete once all are done.
                    var epoch = await SeedAsync(cancellationToken);
                    op.UpstreamAccountReconciler.Invalidate();
                    op.EnqueueAll();
                    await op.UpstreamAccountReconciler.WriteUpstreamListAsync(cancellationToken);
                    await op.WaitForQueuesToDrainAsync(RebuildWait, cancellationToken);
                    await projection.MarkEpochAsync(epoch, cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.MaintenanceFailed(logger, e);
            }
            try
            {
                await Task.Delay(interval, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task<string> SeedAsync(CancellationToken ct) =>
        seeder is null ? await projection.BeginRebuildAsync(ct) : await seeder.SeedAsync(ct);

    private async Task SweepOrphansAsync(CancellationToken ct)
    {
        var live = await reconciler.ListLiveAsync(ct);
        foreach (var (key, secretName) in live.ApiKeys)
        {
            if (!IsOrphan(op.ApiKeyInformer, key)) continue;
            var (ns, name) = Split(key);
            // Not cached yet is not gone: a portal request may have just created it (watch lag). Ask the API.
            if (await op.ApiKeyInformer.Client.TryGetAsync(ns, name, ct) is not null) continue;
            Log.Orphan(logger, "ApiKey", key);
            await reconciler.DeleteApiKeyAsync(ns, name, secretName, op.Source, ct);
        }
        foreach (var key in live.Users)
        {
            if (!IsOrphan(op.UserQuotaInformer, key)) continue;
            Log.Orphan(logger, "UserQuota", key);
            var (ns, name) = Split(key);
            await reconciler.DeleteUserAsync(ns, name, op.Source, ct);
        }
        foreach (var key in live.Upstreams)
        {
            if (!IsOrphan(op.UpstreamAccountInformer, key)) continue;
            Log.Orphan(logger, "UpstreamAccount", key);
            var (ns, name) = Split(key);
            await reconciler.DeleteUpstreamAsync(ns, name, ct);
        }
    }

    /// <summary>Not in the cache, and in a namespace this operator watches (others belong to another operator).</summary>
    private bool IsOrphan<T>(Informer<T> informer, string key) where T : class =>
        (op.Options.Namespace is null || Split(key).Namespace == op.Options.Namespace) && informer.Store.GetEntry(key) is null;

    private static (string Namespace, string Name) Split(string key)
    {
        var (ns, name) = ObjectKey.Split(key);
        return (ns ?? "default", name);
    }
}
