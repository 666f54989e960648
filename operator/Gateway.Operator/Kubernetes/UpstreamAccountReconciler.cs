using System.Collections.Concurrent;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// UpstreamAccount in Kubernetes. The projection holds all upstreams as one list, so every change rewrites
/// the whole list from the informer cache. Each account's resolved projection is remembered with a
/// fingerprint (uid, generation, labels, resourceVersion of its credentials Secret) and recomputed only
/// when that changes, so one change does not re-resolve every account.
/// </summary>
public sealed class UpstreamAccountReconciler(
    Informer<UpstreamAccount> informer,
    Informer<Secret> secrets,
    KubernetesResourceSource source,
    EventRecorder events,
    TokenGateReconciler reconciler,
    TimeSpan resyncInterval) : ResourceReconciler<UpstreamAccount>(informer, source, events, resyncInterval)
{
    /// <summary>Cache index: UpstreamAccounts by "namespace/secret" of the credentials Secret they reference.</summary>
    public const string SecretIndex = "credentials-secret";

    private readonly ConcurrentDictionary<string, (string Fingerprint, UpstreamProjection? Projection)> _projections = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _listLock = new(1, 1);

    public static IEnumerable<string> IndexBySecret(ObjectEntry<UpstreamAccount> e) =>
        SecretName(e.Object) is { } name ? [ObjectKey.Of(e.Metadata.Namespace, name)] : [];

    protected override async Task<ReconcileOutcome> ReconcileObjectAsync(UpstreamAccount ua, ObjectEntry<UpstreamAccount> entry, CancellationToken cancellationToken)
    {
        var beforeReady = ReadyOf(ua.Status?.Conditions);
        var beforeHealthy = Conditions.Find(ua.Status?.Conditions, "Healthy")?.Reason;
        var fingerprint = Fingerprint(entry);
        var (projection, status) = await reconciler.ReconcileUpstreamAsync(ua, Source, cancellationToken);
        _projections[entry.Key] = (fingerprint, projection);
        await Source.WriteStatusAsync(ua.Kind, ua.Metadata, status, cancellationToken);
        await WriteUpstreamListAsync(cancellationToken);
        await ReportReadinessAsync(entry, beforeReady, status.Conditions, cancellationToken);
        await ReportCooldownAsync(entry, beforeHealthy, status.Conditions, cancellationToken);
        return ReconcileOutcome.Done;
    }

    /// <summary>A Warning Event when the proxies start cooling the account down, a Normal one when the cooldown ends.</summary>
    private async Task ReportCooldownAsync(ObjectEntry<UpstreamAccount> entry, string? beforeReason, IEnumerable<Condition> conditions, CancellationToken cancellationToken)
    {
        const string coolingDown = "CoolingDown";
        var healthy = Conditions.Find(conditions, "Healthy");
        if (healthy is null || healthy.Reason == beforeReason) return;
        if (healthy.Reason == coolingDown) await Events.WarningAsync(Reference(entry), coolingDown, healthy.Message, cancellationToken);
        else if (beforeReason == coolingDown)
            await Events.NormalAsync(Reference(entry), "CooldownEnded", "The proxies send requests to the account again. " + healthy.Message, cancellationToken);
    }

    protected override async Task FinalizeAsync(UpstreamAccount ua, CancellationToken cancellationToken)
    {
        await reconciler.DeleteUpstreamAsync(ua.Metadata.Namespace ?? "default", ua.Metadata.Name, cancellationToken);
        await WriteUpstreamListAsync(cancellationToken);
    }

    /// <summary>Writes the projection's upstream list from every account in the cache that is not being deleted.</summary>
    public async Task WriteUpstreamListAsync(CancellationToken cancellationToken)
    {
        await _listLock.WaitAsync(cancellationToken);
        try
        {
            var list = new List<UpstreamProjection>();
            var live = new HashSet<string>(StringComparer.Ordinal);
            foreach (var e in Informer.Store.List().OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                if (e.Metadata.DeletionTimestamp is not null) continue;
                live.Add(e.Key);
                var fingerprint = Fingerprint(e);
                if (!_projections.TryGetValue(e.Key, out var cached) || cached.Fingerprint != fingerprint)
                {
                    // Not reconciled yet in this term (or changed): resolve it now so the list is never partial.
                    var (p, _) = await reconciler.ReconcileUpstreamAsync(Clone(e.Object), Source, cancellationToken);
                    cached = (fingerprint, p);
                    _projections[e.Key] = cached;
                }
                if (cached.Projection is not null) list.Add(cached.Projection);
            }
            foreach (var key in _projections.Keys)
            {
                if (!live.Contains(key)) _projections.TryRemove(key, out _);
            }
            await reconciler.WriteUpstreamsAsync(list, cancellationToken);
        }
        finally
        {
            _listLock.Release();
        }
    }

    /// <summary>Forgets resolved projections (e.g. after Redis lost the projection) so the next list resolves all.</summary>
    public void Invalidate() => _projections.Clear();

    private string Fingerprint(ObjectEntry<UpstreamAccount> e)
    {
        var m = e.Metadata;
        var labels = string.Join(',', (m.Labels ?? []).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value));
        var secretVersion = SecretName(e.Object) is { } name ? secrets.Store.GetEntry(ObjectKey.Of(m.Namespace, name))?.Metadata.ResourceVersion ?? "-" : "";
        return $"{m.Uid}|{m.Generation}|{labels}|{secretVersion}";
    }

    private static string? SecretName(UpstreamAccount ua) =>
        ua.Spec.Credentials.ApiKeySecretRef?.Name ?? ua.Spec.Credentials.Oauth?.SecretRef.Name;
}
