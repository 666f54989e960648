using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// ApiKey in Kubernetes: issues the key into its Secret (owned by the ApiKey), re-issues when that Secret is
/// deleted, rotates on the tokengate.io/rotate annotation, and on delete revokes every version in
/// PostgreSQL and Redis and removes the Secret before letting the object go.
/// </summary>
public sealed class ApiKeyReconciler(
    Informer<ApiKey> informer,
    KubernetesResourceSource source,
    EventRecorder events,
    TokenGateReconciler reconciler,
    TimeSpan resyncInterval,
    Func<string, bool>? ownerPending = null) : ResourceReconciler<ApiKey>(informer, source, events, resyncInterval)
{
    /// <summary>Cache index: ApiKeys by "namespace/owner", so a UserQuota change reaches its keys.</summary>
    public const string OwnerIndex = "owner";

    public static IEnumerable<string> IndexByOwner(ObjectEntry<ApiKey> e) =>
        [ObjectKey.Of(e.Metadata.Namespace, e.Object.Spec.Owner)];

    /// <summary>
    /// The owner UserQuota exists but was not reconciled yet in this term: reconciling the key now would report
    /// OwnerNotFound (a Warning Event and a status write per key) and retry later. The owner's first reconcile
    /// queues its keys, so the key simply waits for it (at a cold start: keys follow their owners).
    /// </summary>
    protected override bool WaitsForAnotherObject(ObjectEntry<ApiKey> entry) =>
        ownerPending?.Invoke(ObjectKey.Of(entry.Metadata.Namespace, entry.Object.Spec.Owner)) == true;

    protected override async Task<ReconcileOutcome> ReconcileObjectAsync(ApiKey ak, ObjectEntry<ApiKey> entry, CancellationToken cancellationToken)
    {
        var beforeVersion = ak.Status?.CurrentVersion ?? 0;
        var beforeReady = ReadyOf(ak.Status?.Conditions);
        var (outcome, status) = await reconciler.ReconcileApiKeyAsync(ak, Source, cancellationToken);
        await Source.WriteStatusAsync(ak.Kind, ak.Metadata, status, cancellationToken);

        if (status.CurrentVersion is int v && v > beforeVersion)
        {
            var reason = beforeVersion == 0 ? "KeyIssued" : "KeyRotated";
            await Events.NormalAsync(Reference(entry), reason,
                $"Key version {v} (prefix {status.KeyPrefix}) was issued into Secret '{ak.EffectiveSecretName}'.", cancellationToken);
        }
        await ReportReadinessAsync(entry, beforeReady, status.Conditions, cancellationToken);
        return outcome;
    }

    protected override Task FinalizeAsync(ApiKey ak, CancellationToken cancellationToken) =>
        reconciler.DeleteApiKeyAsync(ak.Metadata.Namespace ?? "default", ak.Metadata.Name, ak.EffectiveSecretName, Source, cancellationToken);
}
