using Gateway.Kubernetes.Client;

namespace Gateway.Kubernetes.Runtime;

/// <summary>Decides which informer events enqueue a reconcile (controller-runtime's predicates).</summary>
public interface IEventFilter<T> where T : class
{
    bool OnAdd(ObjectEntry<T> entry) => true;
    bool OnUpdate(ObjectEntry<T> oldEntry, ObjectEntry<T> newEntry) => true;
    bool OnDelete(ObjectEntry<T> entry) => true;
}

/// <summary>
/// Ignores updates that leave metadata.generation unchanged (status writes, resyncs), so a controller does not
/// loop on its own status updates. Callers opt in to also pass deletion, finalizer, annotation or label changes.
/// </summary>
public sealed class GenerationChangedFilter<T> : IEventFilter<T> where T : class
{
    /// <summary>Pass updates that set metadata.deletionTimestamp.</summary>
    public bool IncludeDeletionStart { get; init; } = true;
    public bool IncludeFinalizerChanges { get; init; }
    /// <summary>Pass updates that change any annotation, or only these keys when <see cref="AnnotationKeys"/> is set.</summary>
    public bool IncludeAnnotationChanges { get; init; }
    public IReadOnlyCollection<string>? AnnotationKeys { get; init; }
    public bool IncludeLabelChanges { get; init; }

    public bool OnUpdate(ObjectEntry<T> oldEntry, ObjectEntry<T> newEntry)
    {
        var o = oldEntry.Metadata;
        var n = newEntry.Metadata;
        // Types without a generation (most core types) cannot be filtered this way.
        if (n.Generation is null) return true;
        if (o.Generation != n.Generation) return true;
        if (IncludeDeletionStart && o.DeletionTimestamp is null && n.DeletionTimestamp is not null) return true;
        if (IncludeFinalizerChanges && !(o.Finalizers ?? []).SequenceEqual(n.Finalizers ?? [])) return true;
        if (IncludeLabelChanges && !DictEqual(o.Labels, n.Labels, null)) return true;
        if (IncludeAnnotationChanges && !DictEqual(o.Annotations, n.Annotations, AnnotationKeys)) return true;
        return false;
    }

    private static bool DictEqual(Dictionary<string, string>? a, Dictionary<string, string>? b, IReadOnlyCollection<string>? keys)
    {
        a ??= [];
        b ??= [];
        if (keys is not null) return keys.All(k => a.GetValueOrDefault(k) == b.GetValueOrDefault(k));
        return a.Count == b.Count && a.All(p => b.TryGetValue(p.Key, out var v) && v == p.Value);
    }
}

/// <summary>A filter from delegates.</summary>
public sealed class DelegateEventFilter<T>(
    Func<ObjectEntry<T>, bool>? onAdd = null,
    Func<ObjectEntry<T>, ObjectEntry<T>, bool>? onUpdate = null,
    Func<ObjectEntry<T>, bool>? onDelete = null) : IEventFilter<T> where T : class
{
    public bool OnAdd(ObjectEntry<T> entry) => onAdd?.Invoke(entry) ?? true;
    public bool OnUpdate(ObjectEntry<T> oldEntry, ObjectEntry<T> newEntry) => onUpdate?.Invoke(oldEntry, newEntry) ?? true;
    public bool OnDelete(ObjectEntry<T> entry) => onDelete?.Invoke(entry) ?? true;
}
