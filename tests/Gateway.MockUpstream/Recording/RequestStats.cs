using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Gateway.MockUpstream.Recording;

/// <summary>Requests counted per path (GET /_mock/stats). Always on: one dictionary lookup and an interlocked add.</summary>
public sealed class RequestStats
{
    // Unknown paths are client-controlled; past this many distinct ones they share one counter.
    private const int MaxPaths = 1000;
    private const string OtherPaths = "(other)";

    private readonly ConcurrentDictionary<string, StrongBox<long>> _byPath = new(StringComparer.Ordinal);
    private long _total;

    internal void Count(string path)
    {
        Interlocked.Increment(ref _total);
        if (!_byPath.TryGetValue(path, out var box))
        {
            if (_byPath.Count >= MaxPaths) path = OtherPaths;
            box = _byPath.GetOrAdd(path, static _ => new StrongBox<long>());
        }
        Interlocked.Increment(ref box.Value);
    }

    public long Total => Interlocked.Read(ref _total);

    /// <summary>Counts by path, sorted by path.</summary>
    public SortedDictionary<string, long> ByPath()
    {
        var result = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var (path, box) in _byPath) result[path] = Interlocked.Read(ref box.Value);
        return result;
    }

    public void Clear()
    {
        _byPath.Clear();
        Interlocked.Exchange(ref _total, 0);
    }
}
