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
    protected override async Task<ReconcileOutcome> ReconcileObjectAsync(UserQuota uq, ObjectEntry<UserQuota> entry, CancellationToken cancellationToken)
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
        enqueueKeysOfOwner(entry.Key);
        return outcome;
    }

    protected override async Task FinalizeAsync(UserQuota uq, CancellationToken cancellationToken)
    {
        var ns = uq.Metadata.Namespace ?? "default";
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
