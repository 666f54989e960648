using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// The Kubernetes shape shared by the three kinds: read the object from the informer cache, run cleanup and
/// drop the finalizer when it is being deleted, otherwise make sure the finalizer is there before anything
/// is issued, then delegate to <see cref="TokenGateReconciler"/> and report status and Events.
/// </summary>
public abstract class ResourceReconciler<T> : IReconciler<T> where T : class, IResource
{
    private long _reconciles;

    protected ResourceReconciler(Informer<T> informer, KubernetesResourceSource source, EventRecorder events, TimeSpan resyncInterval)
    {
        Informer = informer;
        Source = source;
        Events = events;
        ResyncInterval = resyncInterval;
    }

    protected Informer<T> Informer { get; }
    protected ResourceClient<T> Client => Informer.Client;
    protected KubernetesResourceSource Source { get; }
    protected EventRecorder Events { get; }

    /// <summary>Every object is reconciled again at least this often without any change (drift repair).</summary>
    protected TimeSpan ResyncInterval { get; }

    /// <summary>Reconciles run by this instance (tests use it to see that only the leader works).</summary>
    public long Reconciles => Interlocked.Read(ref _reconciles);

    public async Task<ReconcileResult> ReconcileAsync(string? ns, string name, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _reconciles);
        var entry = Informer.Store.GetEntry(ObjectKey.Of(ns, name));
        // Gone from the cache: the finalizer already ran (orphans from downtime are swept by ProjectionMonitor).
        if (entry is null) return ReconcileResult.Done;
        if (entry.Metadata.DeletionTimestamp is null && WaitsForAnotherObject(entry)) return ReconcileResult.Done;
        var obj = Clone(entry.Object);
        if (entry.Metadata.DeletionTimestamp is not null)
        {
            if (!Finalizers.Has(entry.Metadata, TokenGateApi.Finalizer)) return ReconcileResult.Done;
            await FinalizeAsync(obj, cancellationToken);
            await Finalizers.RemoveAsync(Client, ns, name, TokenGateApi.Finalizer, cancellationToken);
            return ReconcileResult.Done;
        }
        if (!Finalizers.Has(entry.Metadata, TokenGateApi.Finalizer))
        {
            // Before anything is issued: otherwise a delete racing this reconcile could leave a live key behind.
            await Finalizers.AddAsync(Client, entry.Metadata, TokenGateApi.Finalizer, cancellationToken);
        }
        var outcome = await ReconcileObjectAsync(obj, entry, cancellationToken);
        var after = outcome.RequeueAfter is { } d && d < ResyncInterval ? d : ResyncInterval;
        return ReconcileResult.After(after);
    }

    /// <summary>
    /// True when reconciling now would only report a transient state because an object this one depends on has not
    /// been reconciled yet, and that object's reconcile queues this one (an ApiKey waits for its owner at start).
    /// </summary>
    protected virtual bool WaitsForAnotherObject(ObjectEntry<T> entry) => false;

    /// <summary>Brings the world in line with the object (a private copy; mutate freely).</summary>
    protected abstract Task<ReconcileOutcome> ReconcileObjectAsync(T obj, ObjectEntry<T> entry, CancellationToken cancellationToken);

    /// <summary>Undoes what the object caused before its finalizer is removed.</summary>
    protected abstract Task FinalizeAsync(T obj, CancellationToken cancellationToken);

    protected ObjectReference Reference(ObjectEntry<T> entry) => EventRecorder.ReferenceTo(Client.Definition, entry.Metadata);

    /// <summary>The Ready condition as (status, reason), to compare before and after a reconcile.</summary>
    protected static (string Status, string Reason)? ReadyOf(IEnumerable<Condition>? conditions) =>
        Conditions.Find(conditions, "Ready") is { } c ? (c.Status, c.Reason) : null;

    /// <summary>A Warning Event when the object turns (or stays with a new reason) not ready; nothing while it stays the same.</summary>
    protected Task ReportReadinessAsync(ObjectEntry<T> entry, (string Status, string Reason)? before, IEnumerable<Condition> conditions, CancellationToken cancellationToken)
    {
        var ready = Conditions.Find(conditions, "Ready");
        if (ready is null || ready.Status == Conditions.True) return Task.CompletedTask;
        if (before is { } b && b.Status == ready.Status && b.Reason == ready.Reason) return Task.CompletedTask;
        return Events.WarningAsync(Reference(entry), ready.Reason, ready.Message, cancellationToken);
    }

    protected static T Clone(T obj) =>
        JsonSerializer.Deserialize<T>(JsonSerializer.SerializeToUtf8Bytes(obj, TokenGateJson.Options), TokenGateJson.Options)!;
}
