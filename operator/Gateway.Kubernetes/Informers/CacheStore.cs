using Gateway.Kubernetes.Client;

namespace Gateway.Kubernetes.Informers;

/// <summary>
/// The informer's local copy of every object of one type, keyed "namespace/name", with a namespace index
/// and optional custom indexes (e.g. by owner UID). Reads are safe from any thread; objects are shared,
/// so treat them as read-only.
/// </summary>
public sealed class CacheStore<T> where T : class
{
    public const string NamespaceIndex = "namespace";

    private readonly Lock _lock = new();
    private readonly Dictionary<string, ObjectEntry<T>> _items = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Func<ObjectEntry<T>, IEnumerable<string>>> _indexers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Dictionary<string, HashSet<string>>> _indexes = new(StringComparer.Ordinal);

    public CacheStore()
    {
        AddIndexer(NamespaceIndex, e => [e.Metadata.Namespace ?? ""]);
    }

    public int Count { get { lock (_lock) return _items.Count; } }

    /// <summary>Adds an index; <paramref name="indexFunc"/> returns the index values an object is filed under.</summary>
    public void AddIndexer(string name, Func<ObjectEntry<T>, IEnumerable<string>> indexFunc)
    {
        lock (_lock)
        {
            _indexers[name] = indexFunc;
            var index = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
            _indexes[name] = index;
            foreach (var (key, entry) in _items) AddToIndex(index, indexFunc, key, entry);
        }
    }

    public T? Get(string? ns, string name) => GetEntry(ObjectKey.Of(ns, name))?.Object;

    public ObjectEntry<T>? GetEntry(string key)
    {
        lock (_lock) return _items.TryGetValue(key, out var e) ? e : null;
    }

    public IReadOnlyList<ObjectEntry<T>> List()
    {
        lock (_lock) return [.. _items.Values];
    }

    public IReadOnlyList<string> Keys()
    {
        lock (_lock) return [.. _items.Keys];
    }

    public IReadOnlyList<ObjectEntry<T>> ListByNamespace(string ns) => ByIndex(NamespaceIndex, ns);

    public IReadOnlyList<ObjectEntry<T>> ByIndex(string indexName, string value)
    {
        lock (_lock)
        {
            if (!_indexes.TryGetValue(indexName, out var index)) throw new InvalidOperationException($"No index named '{indexName}'.");
            return index.TryGetValue(value, out var keys) ? [.. keys.Select(k => _items[k])] : [];
        }
    }

    /// <summary>Stores the entry; returns the previous one, if any.</summary>
    internal ObjectEntry<T>? Upsert(ObjectEntry<T> entry)
    {
        lock (_lock)
        {
            var key = entry.Key;
            _items.TryGetValue(key, out var old);
            if (old is not null) RemoveFromIndexes(key, old);
            _items[key] = entry;
            foreach (var (name, func) in _indexers) AddToIndex(_indexes[name], func, key, entry);
            return old;
        }
    }

    internal ObjectEntry<T>? Remove(string key)
    {
        lock (_lock)
        {
            if (!_items.Remove(key, out var old)) return null;
            RemoveFromIndexes(key, old);
            return old;
        }
    }

    private void RemoveFromIndexes(string key, ObjectEntry<T> entry)
    {
        foreach (var (name, func) in _indexers)
        {
            var index = _indexes[name];
            foreach (var value in func(entry))
            {
                if (index.TryGetValue(value, out var set))
                {
                    set.Remove(key);
                    if (set.Count == 0) index.Remove(value);
                }
            }
        }
    }

    private static void AddToIndex(Dictionary<string, HashSet<string>> index, Func<ObjectEntry<T>, IEnumerable<string>> func, string key, ObjectEntry<T> entry)
    {
        foreach (var value in func(entry))
        {
            if (!index.TryGetValue(value, out var set)) index[value] = set = new HashSet<string>(StringComparer.Ordinal);
            set.Add(key);
        }
    }
}
