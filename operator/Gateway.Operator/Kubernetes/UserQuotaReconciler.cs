using System.Collections.Concurrent;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Reconcilers;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// UserQuota in Kubernetes: user row, grants, limits and projection via <see cref="TokenGateReconciler"/>;
/// a GrantCredited Event per newly credited grant; afterwards the user's ApiKeys are reconciled, because
/// their readiness depends on the owner (it may have just appeared, been suspended or been deleted).
/// </summary>
public sealed class UserQuotaReconciler(
    Informer<UserQuota> informer,
    KubernetesResourceSource source,
    EventRecorder events,
    TokenGateReconciler reconciler,
    IDbContextFactory<TokenGateDbContext> dbFactory,
    Action<string> enqueueKeysOfOwner,
    TimeSpan resyncInterval) : ResourceReconciler<UserQuota>(informer, source, events, resyncInterval)
{
    // Owner inputs (uid|generation) as of this replica's last reconcile of each UserQuota.
    private readonly ConcurrentDictionary<string, string> _reconciled = new(StringComparer.Ordinal);

    protected override async Task<ReconcileOutcome> ReconcileObjectAsync(UserQuota uq, ObjectEntry<UserQuota> entry, CancellationToken cancellationToken)
    {
        try
        {
            return await ReconcileUserAsync(uq, entry, cancellationToken);
        }
        catch (Exception) when (!_reconciled.ContainsKey(entry.Key))
        {
            // Keys never wait on an owner that fails: they go ahead with what PostgreSQL holds, as they would alone.
            _reconciled[entry.Key] = "failed";
            enqueueKeysOfOwner(entry.Key);
            throw;
        }
    }

    private async Task<ReconcileOutcome> ReconcileUserAsync(UserQuota uq, ObjectEntry<UserQuota> entry, CancellationToken cancellationToken)
    {
        var ns = uq.Metadata.Namespace ?? "default";
        var beforeReady = ReadyOf(uq.Status?.Conditions);
        var credited = await CreditedGrantsAsync(ns, uq.Metadata.Name, cancellationToken);
        var (outcome, status) = await reconciler.ReconcileUserAsync(uq, Source, cancellationToken);
        await Source.WriteStatusAsync(uq.Kind, uq.Metadata, status, cancellationToken);

        if (uq.Spec.Grants.Any(g => !credited.Contains(g.Id)))
        {
            var now = await CreditedGrantsAsync(ns, uq.Metadata.Name, cancellationToken);
            foreach (var g in uq.Spec.Grants.Where(g => !credited.Contains(g.Id) && now.Contains(g.Id)))
            {
                await Events.NormalAsync(Reference(entry), "GrantCredited", $"Grant '{g.Id}' credited {g.Amount} USD to the balance.", cancellationToken);
            }
        }
        await ReportReadinessAsync(entry, beforeReady, status.Conditions, cancellationToken);
        // The keys' readiness depends on the owner's row and spec (suspended, maxKeys): queue them when the owner is
        // new to this replica or its spec changed, not on every usage refresh or resync of the owner.
        var inputs = $"{entry.Metadata.Uid}|{entry.Metadata.Generation}";
        if (_reconciled.TryGetValue(entry.Key, out var seen) && seen == inputs) return outcome;
        _reconciled[entry.Key] = inputs;
        enqueueKeysOfOwner(entry.Key);
        return outcome;
    }

    /// <summary>
    /// True when the UserQuota is in the cache, not being deleted, and this replica has not reconciled it yet:
    /// its keys wait for that first reconcile, which queues them.
    /// </summary>
    public bool IsPending(string key) =>
        Informer.Store.GetEntry(key) is { } e && e.Metadata.DeletionTimestamp is null && !_reconciled.ContainsKey(key);

    protected override async Task FinalizeAsync(UserQuota uq, CancellationToken cancellationToken)
    {
        var ns = uq.Metadata.Namespace ?? "default";
        _reconciled.TryRemove(ObjectKey.Of(ns, uq.Metadata.Name), out _);
        await reconciler.DeleteUserAsync(ns, uq.Metadata.Name, Source, cancellationToken);
        enqueueKeysOfOwner(ObjectKey.Of(ns, uq.Metadata.Name));
    }

    /// <summary>Grant ids already in the ledger for this user (the reconciler credits each id once, ever).</summary>
    private async Task<HashSet<string>> CreditedGrantsAsync(string ns, string name, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var ids = await db.LedgerEntries
            .Where(e => e.Kind == LedgerKinds.Grant && e.GrantId != null && db.Users.Any(u => u.Id == e.UserId && u.Namespace == ns && u.Name == name))
            .Select(e => e.GrantId!)
            .ToListAsync(ct);
        return ids.ToHashSet(StringComparer.Ordinal);
    }
}
