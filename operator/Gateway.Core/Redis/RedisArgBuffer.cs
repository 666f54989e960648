using System.Collections;
using System.Collections.Concurrent;

namespace Gateway.Core.Redis;

/// <summary>
/// A growable list of command arguments that can be rented from a small process-wide pool, so hot paths
/// (the Enforcer's scripts: dozens of arguments per request) build no array per command. Pass it as the
/// keys or args of <see cref="IRedisClient.ExecuteAsync"/> / <see cref="IRedisClient.EvalAsync"/> and return
/// it only after that call completed (the client may send the arguments again, e.g. EVAL after NOSCRIPT).
/// Not thread-safe: one owner at a time.
/// </summary>
public sealed class RedisArgBuffer : IReadOnlyList<RedisArg>
{
    // Buffers that grew beyond this are not pooled (a rare huge command must not pin memory).
    private const int MaxPooledCapacity = 256;
    // Enough for two buffers per request at a few hundred requests in flight per process.
    private const int MaxPooled = 1024;
    private const int RentedCapacity = 64;
    private static readonly ConcurrentQueue<RedisArgBuffer> Pool = new();
    private static int _pooled;

    private RedisArg[] _items;
    private int _count;

    public RedisArgBuffer(int capacity = 16) => _items = new RedisArg[Math.Max(capacity, 4)];

    public int Count => _count;

    public RedisArg this[int index] => (uint)index < (uint)_count ? _items[index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>A cleared buffer from the pool, or a new one when the pool is empty.</summary>
    public static RedisArgBuffer Rent()
    {
        if (Pool.TryDequeue(out var buffer))
        {
            Interlocked.Decrement(ref _pooled);
            return buffer;
        }
        return new RedisArgBuffer(RentedCapacity);
    }

    /// <summary>Clears <paramref name="buffer"/> (dropping its references) and puts it back in the pool.
    /// The caller must not use it afterwards.</summary>
    public static void Return(RedisArgBuffer buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer._items.Length > MaxPooledCapacity) return;
        buffer.Clear();
        if (Interlocked.Increment(ref _pooled) > MaxPooled)
        {
            Interlocked.Decrement(ref _pooled);
            return;
        }
        Pool.Enqueue(buffer);
    }

    public void Add(RedisArg arg)
    {
        if (_count == _items.Length) Array.Resize(ref _items, _items.Length * 2);
        _items[_count++] = arg;
    }

    public void AddRange(IReadOnlyList<RedisArg> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var needed = _count + args.Count;
        if (needed > _items.Length) Array.Resize(ref _items, Math.Max(needed, _items.Length * 2));
        for (var i = 0; i < args.Count; i++) _items[_count++] = args[i];
    }

    internal ReadOnlySpan<RedisArg> AsSpan() => _items.AsSpan(0, _count);

    /// <summary>Empties the buffer; the strings and arrays it referenced can be collected.</summary>
    public void Clear()
    {
        Array.Clear(_items, 0, _count);
        _count = 0;
    }

    public IEnumerator<RedisArg> GetEnumerator()
    {
        for (var i = 0; i < _count; i++) yield return _items[i];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
