using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Projection;

namespace Gateway.Core.Enforcement;

/// <summary>
/// The Redis key names the Enforcer uses per API key and per user, built once per id instead of on every
/// request (each is a string concatenation of prefix and id, and a request needs about ten of them).
/// Bounded: when it holds more than <see cref="MaxEntries"/> ids it starts over, so a flood of distinct ids
/// costs at most a rebuild, never unbounded memory.
/// </summary>
internal sealed class KeyNameCache(ProjectionKeys keys)
{
    internal const int MaxEntries = 50_000;

    private readonly ConcurrentDictionary<string, KeyNames> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, UserNames> _users = new(StringComparer.Ordinal);
    private int _keyCount;
    private int _userCount;

    public KeyNames ForKey(string keyId)
    {
        if (_keys.TryGetValue(keyId, out var names)) return names;
        names = new KeyNames(keys.KeyRateCounters(keyId), keys.KeyInflight(keyId), keys.KeyLifetime(keyId));
        if (_keys.TryAdd(keyId, names) && Interlocked.Increment(ref _keyCount) > MaxEntries)
        {
            _keys.Clear();
            Volatile.Write(ref _keyCount, 0);
        }
        return names;
    }

    public UserNames ForUser(string userId)
    {
        if (_users.TryGetValue(userId, out var names)) return names;
        names = new UserNames(keys, userId);
        if (_users.TryAdd(userId, names) && Interlocked.Increment(ref _userCount) > MaxEntries)
        {
            _users.Clear();
            Volatile.Write(ref _userCount, 0);
        }
        return names;
    }

    internal int Count => _keys.Count + _users.Count;
}

internal sealed record KeyNames(string RateCounters, string Inflight, string Lifetime);

internal sealed class UserNames(ProjectionKeys keys, string userId)
{
    private BudgetKeyEntry? _budget;

    public string RateCounters { get; } = keys.UserRateCounters(userId);
    public string Inflight { get; } = keys.UserInflight(userId);
    public string Balance { get; } = keys.Balance(userId);
    public string BudgetNone { get; } = keys.BudgetSpent(userId, "none");

    /// <summary>The budget-spent key of <paramref name="period"/>; the last one is kept (a user is in one period at a time).</summary>
    public string BudgetKey(BudgetPeriod period)
    {
        var start = period.Start.ToUnixTimeSeconds();
        var cached = Volatile.Read(ref _budget);
        if (cached is not null && cached.StartSeconds == start) return cached.Key;
        var key = keys.BudgetSpent(userId, start.ToString(CultureInfo.InvariantCulture));
        Volatile.Write(ref _budget, new BudgetKeyEntry(start, key));
        return key;
    }

    private sealed record BudgetKeyEntry(long StartSeconds, string Key);
}
