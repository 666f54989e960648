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

    /// <summary>The names of one API key's counters, which live in its owner's shard.</summary>
    public KeyNames ForKey(string userId, string keyId)
    {
        if (_keys.TryGetValue(keyId, out var names) && string.Equals(names.UserId, userId, StringComparison.Ordinal)) return names;
        names = new KeyNames(userId, keys.KeyRateCounters(userId, keyId), keys.KeyInflight(userId, keyId), keys.KeyLifetime(userId, keyId));
        if (!_keys.TryAdd(keyId, names))
        {
            _keys[keyId] = names; // the key changed owner: its counters are in the new owner's shard
        }
        else if (Interlocked.Increment(ref _keyCount) > MaxEntries)
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

internal sealed record KeyNames(string UserId, string RateCounters, string Inflight, string Lifetime);

internal sealed class UserNames(ProjectionKeys keys, string userId)
{
    private BudgetKeyEntry? _budget;

    public string UserId { get; } = userId;
    /// <summary>The user's shard (<see cref="ProjectionKeys.ShardOf"/>): every key below shares its hash tag.</summary>
    public int Shard { get; } = ProjectionKeys.ShardOf(userId);
    public string RateCounters { get; } = keys.UserRateCounters(userId);
    public string Inflight { get; } = keys.UserInflight(userId);
    public string Balance { get; } = keys.Balance(userId);
    public string BudgetNone { get; } = keys.BudgetSpent(userId, "none");
    public string Reservations { get; } = keys.Reservations(ProjectionKeys.ShardOf(userId));
    public string UsageStream { get; } = keys.UsageStream(ProjectionKeys.ShardOf(userId));
    public string Leases { get; } = keys.Leases(ProjectionKeys.ShardOf(userId));
    public string LeaseIds { get; } = keys.UserLeases(userId);
    /// <summary>The reservation keys' common start in this shard (<see cref="ProjectionKeys.Reservation"/> of "").</summary>
    public string ReservationStem { get; } = keys.Reservation(ProjectionKeys.ShardOf(userId), "");

    /// <summary>The budget-spent key of <paramref name="period"/>; the last one is kept (a user is in one period at a time).</summary>
    public string BudgetKey(BudgetPeriod period)
    {
        var start = period.Start.ToUnixTimeSeconds();
        var cached = Volatile.Read(ref _budget);
        if (cached is not null && cached.StartSeconds == start) return cached.Key;
        var key = keys.BudgetSpent(UserId, start.ToString(CultureInfo.InvariantCulture));
        Volatile.Write(ref _budget, new BudgetKeyEntry(start, key));
        return key;
    }

    private sealed record BudgetKeyEntry(long StartSeconds, string Key);
}
