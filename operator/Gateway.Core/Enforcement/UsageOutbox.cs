using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Enforcement;

/// <summary>
/// Keeps every usage event this process appended to the usage stream until the ledger writer has it, so that a
/// Redis that loses its data (FLUSHALL, or a restart without its append-only file) loses no usage: the events it
/// took with it, and the requests whose reservation vanished while they ran, are charged again once the operator
/// has rebuilt the projection. One per process, fed by <see cref="Enforcer"/>; <see cref="RunAsync"/> checks about
/// four times a second.
/// </summary>
/// <remarks>
/// <para>An event is safe once the ledger writer's consumer group has read it and acknowledged it: its id is at or
/// below the group's last-delivered id and below the smallest pending id (the writer acknowledges only after
/// PostgreSQL committed). Both are read between two readings of the projection's epoch, so they belong to the same
/// Redis incarnation as the events checked against them.</para>
/// <para>A loss shows as a new epoch: the operator writes the epoch only when it is missing (the first build, or a
/// rebuild after a loss), as the Redis time at which the rebuild began. Every held event with an id (Redis time)
/// before that instant was written before the loss and is charged again (<see cref="RecoveryScripts.Recharge"/>);
/// later ones were written into the new stream. A recharge waits until the user's balance is rebuilt. One that
/// duplicates an event the ledger already had is refunded by the ledger writer, so the money stays exact either
/// way; the only cost of checking late is that such duplicates are held against the balance for a moment.</para>
/// </remarks>
public sealed class UsageOutbox
{
    private static readonly Meter UsageMeter = new("TokenGate.Usage");
    private static readonly Counter<long> RechargedCounter = UsageMeter.CreateCounter<long>("tokengate_usage_recharged_total",
        description: "Usage events charged again after Redis lost them (or the reservation of a request in flight) with its data.");
    private static readonly Counter<long> DroppedCounter = UsageMeter.CreateCounter<long>("tokengate_usage_outbox_dropped_total",
        description: "Usage events the outbox stopped holding because it was full (they stay in the usage stream; only a loss of Redis' data would lose them).");

    private readonly IRedisClient _redis;
    private readonly ProjectionKeys _keys;
    private readonly UsageOutboxOptions _options;
    private readonly ILogger _logger;
    private readonly ConcurrentQueue<Held> _incoming = new();
    private readonly SemaphoreSlim _pass = new(1, 1);
    // Owned by the pass (under _pass).
    private readonly List<Held> _held = [];
    private readonly List<Held> _toRecharge = [];
    private string? _epoch;
    private long _lastDropLog;
    private int _droppedSinceLog;
    private long _recharged;
    private int _heldCount;

    public UsageOutbox(IRedisClient redis, ProjectionKeys keys, UsageOutboxOptions? options = null, ILogger<UsageOutbox>? logger = null)
    {
        _redis = redis;
        _keys = keys;
        _options = options ?? new UsageOutboxOptions();
        _logger = logger ?? (ILogger)NullLogger.Instance;
    }

    /// <summary>Events held (written but not yet known to be with the ledger writer, or waiting to be charged again).</summary>
    public int Count => _incoming.Count + Volatile.Read(ref _heldCount);

    /// <summary>Events charged again since start.</summary>
    public long Recharged => Interlocked.Read(ref _recharged);

    /// <summary>Settlement or expiry appended <paramref name="usage"/> to the stream as <paramref name="streamId"/>.</summary>
    internal void Written(string streamId, UsageEvent usage, long chargedMicros, string budgetKey)
    {
        if (!StreamId.TryParse(streamId, out var id)) return;
        _incoming.Enqueue(new Held(id, usage, chargedMicros, budgetKey));
    }

    /// <summary>Settlement found the request's reservation gone without having ended it: Redis lost it (or the
    /// sweeper charged it as an orphan first; then the recharge is refunded as a duplicate).</summary>
    internal void Lost(UsageEvent usage, long chargedMicros, string budgetKey) =>
        _incoming.Enqueue(new Held(null, usage, chargedMicros, budgetKey));

    /// <summary>Checks every <see cref="UsageOutboxOptions.Interval"/> until cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.Interval);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await CheckAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is RedisConnectionException or RedisServerException or TimeoutException)
                {
                    // Redis is down or restarting: everything stays held until it answers again.
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // Anything else is a bug, but the checks must go on: a stopped outbox would leave lost usage unmetered.
                    Log.CheckFailed(_logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One check: lets go of events the ledger writer has, detects a loss, charges again what it took.</summary>
    public async Task CheckAsync(CancellationToken cancellationToken = default)
    {
        await _pass.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (_incoming.TryDequeue(out var h)) (h.Id is null ? _toRecharge : _held).Add(h);
            Bound();

            var epoch = (await _redis.ExecuteAsync("GET", [_keys.Epoch], cancellationToken).ConfigureAwait(false)).AsString();
            // Missing: the projection is being (re)built; nothing can be confirmed or charged against it yet.
            if (epoch is null) return;
            // Every event written since this epoch's rebuild began has a later id (Redis time), so any held event with an
            // earlier one was written before a loss: after a new epoch, and also when its Written() came late (a starved
            // thread pool can run this check between a settlement's XADD and its Written()).
            var lost = Lost(epoch);
            if (_epoch is not null && !string.Equals(epoch, _epoch, StringComparison.Ordinal) || lost > 0) Log.ProjectionLost(_logger, lost);
            _epoch = epoch;

            await ConfirmAsync(epoch, cancellationToken).ConfigureAwait(false);
            await RechargeAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _heldCount, _held.Count + _toRecharge.Count);
            _pass.Release();
        }
    }

    /// <summary>Moves every held event written before the epoch's rebuild began to the recharges; returns how many.</summary>
    private int Lost(string epoch)
    {
        // The epoch is "<Redis ms when its rebuild began>-<random>". One in another form names no instant (an older
        // operator wrote its own clock there, at every pass): then nothing is moved.
        var dash = epoch.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0 || !long.TryParse(epoch.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var rebuiltAt)) return 0;
        var lost = 0;
        for (var i = _held.Count - 1; i >= 0; i--)
        {
            if (_held[i].Id!.Value.Ms >= rebuiltAt) continue;
            _toRecharge.Add(_held[i]);
            _held.RemoveAt(i);
            lost++;
        }
        return lost;
    }

    private async Task ConfirmAsync(string epoch, CancellationToken ct)
    {
        if (_held.Count == 0) return;
        // Each shard has its own usage stream: read the ledger group's position in every shard that holds events.
        var shards = _held.Select(h => h.Shard).Distinct().ToArray();
        var positions = await Task.WhenAll(shards.Select(shard => ReadPositionAsync(shard, ct))).ConfigureAwait(false);
        // Both readings must come from the incarnation the epoch names.
        var after = (await _redis.ExecuteAsync("GET", [_keys.Epoch], ct).ConfigureAwait(false)).AsString();
        if (!string.Equals(after, epoch, StringComparison.Ordinal)) return;
        for (var i = 0; i < shards.Length; i++)
        {
            if (positions[i] is not var (lastDelivered, minPending)) continue;
            var shard = shards[i];
            _held.RemoveAll(h => h.Shard == shard
                && h.Id!.Value.CompareTo(lastDelivered) <= 0 && (minPending is not { } p || h.Id.Value.CompareTo(p) < 0));
        }
    }

    /// <summary>The ledger group's last delivered entry and oldest pending one in a shard's stream; null when there is no
    /// stream or group yet (a fresh or just-flushed Redis): nothing of that shard is confirmed.</summary>
    private async Task<(StreamId LastDelivered, StreamId? MinPending)?> ReadPositionAsync(int shard, CancellationToken ct)
    {
        var stream = _keys.UsageStream(shard);
        try
        {
            var groups = await _redis.ExecuteAsync("XINFO", ["GROUPS", stream], ct).ConfigureAwait(false);
            if (FindLastDelivered(groups) is not { } last) return null;
            StreamId? minPending = null;
            var pending = await _redis.ExecuteAsync("XPENDING", [stream, ProjectionKeys.UsageGroup], ct).ConfigureAwait(false);
            if (pending.Items.Count >= 2 && pending.Items[0].AsInt64() > 0 && StreamId.TryParse(pending.Items[1].AsString(), out var min)) minPending = min;
            return (last, minPending);
        }
        catch (RedisServerException)
        {
            return null;
        }
    }

    private async Task RechargeAsync(CancellationToken ct)
    {
        for (var i = 0; i < _toRecharge.Count;)
        {
            var h = _toRecharge[i];
            var u = h.Usage;
            var rechargeId = Guid.NewGuid().ToString("N");
            var args = new RedisArgBuffer(3 + UsageStreamFields.Names.Length);
            args.Add(h.ChargedMicros); args.Add(u.Tokens.Total); args.Add(rechargeId);
            UsageStreamFields.AddValuesTo(args, u);
            RedisArg[] keys = [_keys.Balance(u.UserId), _keys.KeyLifetime(u.UserId, u.KeyId), h.BudgetKey, _keys.UsageStream(ProjectionKeys.ShardOf(u.UserId))];
            var reply = await _redis.EvalAsync(RecoveryScripts.Recharge, keys, args, ct).ConfigureAwait(false);
            if (reply.Type != RespType.BulkString || !StreamId.TryParse(reply.AsString(), out var id))
            {
                // The user's balance is not rebuilt yet; one that never comes back (the user was deleted) is given up.
                if (++h.Attempts >= _options.MaxRechargeAttempts)
                {
                    _toRecharge.RemoveAt(i);
                    Log.RechargeAbandoned(_logger, u.RequestId, h.Attempts);
                    continue;
                }
                i++;
                continue;
            }
            _toRecharge.RemoveAt(i);
            _held.Add(new Held(id, u, h.ChargedMicros, h.BudgetKey));
            Interlocked.Increment(ref _recharged);
            RechargedCounter.Add(1);
            Log.Recharged(_logger, u.RequestId, h.ChargedMicros);
        }
    }

    private void Bound()
    {
        var over = _held.Count - _options.MaxHeld;
        if (over <= 0) return;
        // Oldest first: they are the likeliest to be persisted already (a PostgreSQL outage keeps them pending).
        _held.RemoveRange(0, over);
        DroppedCounter.Add(over);
        _droppedSinceLog += over;
        // Once a minute at most: with no ledger writer running (it is stopped, or PostgreSQL is down for long) this repeats.
        var now = Environment.TickCount64;
        if (_lastDropLog != 0 && now - _lastDropLog < 60_000) return;
        Log.Dropped(_logger, _droppedSinceLog, _options.MaxHeld);
        _lastDropLog = now;
        _droppedSinceLog = 0;
    }

    private static StreamId? FindLastDelivered(RespValue groups)
    {
        foreach (var g in groups.Items)
        {
            var f = g.Items;
            string? name = null, last = null;
            for (var i = 0; i + 1 < f.Count; i += 2)
            {
                var field = f[i].AsString();
                if (field == "name") name = f[i + 1].AsString();
                else if (field == "last-delivered-id") last = f[i + 1].AsString();
            }
            if (name == ProjectionKeys.UsageGroup && StreamId.TryParse(last, out var id)) return id;
        }
        return null;
    }

    private sealed class Held(StreamId? id, UsageEvent usage, long chargedMicros, string budgetKey)
    {
        public StreamId? Id { get; } = id;
        public UsageEvent Usage { get; } = usage;
        public long ChargedMicros { get; } = chargedMicros;
        public string BudgetKey { get; } = budgetKey;
        public int Attempts { get; set; }

        // Computed by the background check, not on the request path that creates the record.
        private int _shard = -1;

        /// <summary>The shard whose usage stream the event went to (<see cref="ProjectionKeys.ShardOf"/>).</summary>
        public int Shard => _shard >= 0 ? _shard : _shard = ProjectionKeys.ShardOf(Usage.UserId);
    }
}

/// <summary>Settings of <see cref="UsageOutbox"/> (section TokenGate:UsageOutbox of the proxy and the operator).</summary>
public sealed class UsageOutboxOptions
{
    /// <summary>How often the outbox checks what the ledger writer has and whether Redis lost its data.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Events held at most; beyond, the oldest are let go (they stay in the stream; see tokengate_usage_outbox_dropped_total).</summary>
    public int MaxHeld { get; set; } = 100_000;

    /// <summary>Checks a recharge waits for its user's balance before it is given up (and logged): 2,400 are ten minutes at the default interval.</summary>
    public int MaxRechargeAttempts { get; set; } = 2_400;

    /// <summary>One message per wrong setting, empty when valid.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (MaxRechargeAttempts < 1) errors.Add($"TokenGate:UsageOutbox:MaxRechargeAttempts must be at least 1 (was {MaxRechargeAttempts}).");
        if (Interval < TimeSpan.FromMilliseconds(10) || Interval > TimeSpan.FromSeconds(60))
            errors.Add($"TokenGate:UsageOutbox:Interval must be between 00:00:00.01 and 00:01:00 (was {Interval}).");
        if (MaxHeld is < 1_000 or > 10_000_000) errors.Add($"TokenGate:UsageOutbox:MaxHeld must be between 1000 and 10000000 (was {MaxHeld}).");
        return errors;
    }
}

/// <summary>A Redis stream entry id (milliseconds-sequence), ordered as Redis orders them.</summary>
internal readonly record struct StreamId(long Ms, long Seq) : IComparable<StreamId>
{
    public int CompareTo(StreamId other) => Ms != other.Ms ? Ms.CompareTo(other.Ms) : Seq.CompareTo(other.Seq);

    public static bool TryParse(string? text, out StreamId id)
    {
        id = default;
        if (text is null) return false;
        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0) return false;
        if (!long.TryParse(text.AsSpan(0, dash), NumberStyles.None, CultureInfo.InvariantCulture, out var ms)
            || !long.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var seq)) return false;
        id = new StreamId(ms, seq);
        return true;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Ms}-{Seq}");
}

internal static partial class Log
{
    [LoggerMessage(EventId = 3110, Level = LogLevel.Warning, Message = "Redis lost the projection: {Count} usage events this process wrote before the loss are charged again once their users' balances are rebuilt.")]
    public static partial void ProjectionLost(ILogger logger, int count);

    [LoggerMessage(EventId = 3111, Level = LogLevel.Information, Message = "Charged request {RequestId} again ({Micros} micro-dollars) after Redis lost its usage event or reservation.")]
    public static partial void Recharged(ILogger logger, string requestId, long micros);

    [LoggerMessage(EventId = 3113, Level = LogLevel.Error, Message = "Gave up charging request {RequestId} again after {Attempts} checks: its user's balance never came back (user deleted?).")]
    public static partial void RechargeAbandoned(ILogger logger, string requestId, int attempts);

    [LoggerMessage(EventId = 3114, Level = LogLevel.Error, Message = "A usage outbox check failed; the next check retries.")]
    public static partial void CheckFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 3112, Level = LogLevel.Warning, Message = "The usage outbox is full ({MaxHeld} events): let go of the {Count} oldest (they stay in the usage stream).")]
    public static partial void Dropped(ILogger logger, int count, int maxHeld);
}
