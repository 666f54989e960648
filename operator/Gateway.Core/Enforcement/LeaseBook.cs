using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Core.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Enforcement;

/// <summary>
/// One replica's quota leases (Hot path v2 in DESIGN): admits requests against a (user, key) pair's lease with no Redis
/// script of their own, and writes what happened in group commits: one <see cref="Enforcer.FlushLeasedAsync"/> call
/// carries every admission, settlement and release queued since the previous one.
/// </summary>
/// <remarks>
/// Invariants kept here: an admission returns only once its in-flight record is in Redis (so a replica that dies
/// leaves every request that may reach an upstream known to the sweeper, as exact mode's reservation does); a lease's
/// records are all flushed before it is returned, and none is queued after (its requests still in flight are handed
/// over as reservations and settled exactly); a pair whose lease is refused (near a limit) is admitted exactly
/// (<see cref="TryAdmitAsync"/> returns null); where a concurrency limit applies, no more of a lease's requests are in
/// flight than the slots it holds. Thread-safe; one instance per process.
/// </remarks>
public sealed partial class LeaseBook : IAsyncDisposable
{
    private static readonly Meter LeaseMeter = new("TokenGate.Leases");
    private static readonly Counter<long> GrantedCounter = LeaseMeter.CreateCounter<long>("tokengate_leases_granted_total",
        description: "Quota leases this replica was granted.");
    private static readonly Counter<long> RefusedCounter = LeaseMeter.CreateCounter<long>("tokengate_leases_refused_total",
        description: "Quota lease requests refused because a limit was near (the pair is admitted exactly for a while).");
    private static readonly Counter<long> ReturnedCounter = LeaseMeter.CreateCounter<long>("tokengate_leases_returned_total",
        description: "Quota leases this replica returned (idle, replaced, invalidated, expired or at shutdown).");
    private static readonly Counter<long> AdmittedCounter = LeaseMeter.CreateCounter<long>("tokengate_leased_admissions_total",
        description: "Requests admitted against a quota lease (the others ran the exact admission script).");
    private readonly Enforcer _enforcer;
    private readonly LeaseOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Pair> _pairs = new(StringComparer.Ordinal);
    private readonly object _queueLock = new();
    private List<Record> _queue = [];
    private readonly SemaphoreSlim _flushLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly SemaphoreSlim _wake = new(0, int.MaxValue);
    private int _disposed;
    private int _signaled;
    private int _lingering;
    private long _lastSweep;

    public LeaseBook(Enforcer enforcer, LeaseOptions? options = null, TimeProvider? time = null, ILogger<LeaseBook>? logger = null)
    {
        _enforcer = enforcer;
        _options = options ?? new LeaseOptions();
        _time = time ?? TimeProvider.System;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>The replica's identity in the lease hashes.</summary>
    public string Owner { get; } = Environment.MachineName + "-" + Guid.NewGuid().ToString("N")[..8];

    /// <summary>Leases granted since start.</summary>
    public long Granted => Interlocked.Read(ref _granted);
    private long _granted;

    /// <summary>Leases returned (by this replica) since start.</summary>
    public long Returned => Interlocked.Read(ref _returned);
    private long _returned;

    /// <summary>Leases currently held (active or ending).</summary>
    public int Held => _pairs.Values.Sum(p => p.HeldCount);

    /// <summary>
    /// Admits <paramref name="request"/> against its pair's lease (taking one first if needed) and returns once its
    /// in-flight record is in Redis; null when the pair is admitted exactly (its lease was refused near a limit): call
    /// <see cref="Enforcer.AdmitAsync"/> then.
    /// </summary>
    /// <exception cref="Projection.ProjectionMissingException">The projection is being rebuilt.</exception>
    public async ValueTask<LeaseTicket?> TryAdmitAsync(AdmissionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (Volatile.Read(ref _disposed) == 1) return null;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var pair = _pairs.GetOrAdd(request.Key.KeyId, static id => new Pair(id));
            var now = _time.GetUtcNow();
            LeaseTicket? ticket = null;
            Task<Slot?> renewal;
            lock (pair)
            {
                // A pair removed by the sweep (no leases left) is replaced by a fresh one in the dictionary.
                if (pair.Removed) continue;
                // Demand, not admissions, sizes the next lease (requests waiting for a grant count too).
                if (attempt == 0) pair.Note(now);
                if (pair.Current is { } slot && slot.TryTake(request, now, _options.ExpiryMargin) is { } taken)
                {
                    ticket = taken;
                    Enqueue(new Record(slot, taken, RecordKind.Admission, null, 0));
                    renewal = slot.Low(now) ? StartRenewal(pair, request, now) : Task.FromResult<Slot?>(null);
                }
                else
                {
                    pair.Current?.Retire();
                    if (pair.RefusedUntil > now) return null;
                    renewal = StartRenewal(pair, request, now);
                }
            }
            if (ticket is not null)
            {
                LeaseTicket admitted;
                try
                {
                    admitted = await AwaitAdmissionAsync(ticket).ConfigureAwait(false);
                }
                catch (LeaseGoneException)
                {
                    // Redis no longer has the lease (it lost its data, or the sweeper reclaimed it): take a new one, which
                    // fails with ProjectionMissingException while the projection is being rebuilt.
                    continue;
                }
                AdmittedCounter.Add(1);
                return admitted;
            }
            if (await renewal.ConfigureAwait(false) is null) return null;
        }
        return null;
    }

    private async ValueTask<LeaseTicket> AwaitAdmissionAsync(LeaseTicket ticket)
    {
        Wake();
        try
        {
            await ticket.Recorded.Task.ConfigureAwait(false);
            return ticket;
        }
        catch
        {
            // The record did not reach Redis: the request is refused and its share goes back to the local lease.
            ticket.Slot.Untake(ticket);
            throw;
        }
    }

    /// <summary>Settles a leased request: its actual cost and tokens replace its share of the lease locally, and its usage
    /// event leaves with the next flush (or, when its lease has ended meanwhile, it settles the reservation it was handed
    /// over as).</summary>
    public ValueTask SettleAsync(LeaseTicket ticket, UsageEvent usage, long actualMicros, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        ArgumentNullException.ThrowIfNull(usage);
        ArgumentOutOfRangeException.ThrowIfNegative(actualMicros);
        if (!string.Equals(usage.RequestId, ticket.RequestId, StringComparison.Ordinal))
            throw new ArgumentException("The usage event's request id differs from the ticket's.", nameof(usage));
        return Finish(ticket, RecordKind.Settlement, usage, actualMicros, cancellationToken);
    }

    /// <summary>Releases a leased request that never reached an upstream: it still counts as a request; nothing is charged.</summary>
    public ValueTask ReleaseAsync(LeaseTicket ticket, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ticket);
        return Finish(ticket, RecordKind.Release, null, 0, cancellationToken);
    }

    private ValueTask Finish(LeaseTicket ticket, RecordKind kind, UsageEvent? usage, long actualMicros, CancellationToken cancellationToken)
    {
        var slot = ticket.Slot;
        lock (slot.Pair)
        {
            if (!ticket.TryFinish()) return ValueTask.CompletedTask;
            if (slot.Accepting)
            {
                slot.Settle(ticket, kind == RecordKind.Settlement ? actualMicros : 0, usage?.Tokens.Total ?? 0, kind == RecordKind.Release);
                Enqueue(new Record(slot, ticket, kind, usage, actualMicros));
                WakeAfterLinger();
                return ValueTask.CompletedTask;
            }
        }
        return FinishHandedOverAsync(ticket, slot, kind, usage, actualMicros, cancellationToken);
    }

    // The lease ended while the request was in flight: it was handed over as an ordinary reservation.
    private async ValueTask FinishHandedOverAsync(LeaseTicket ticket, Slot slot, RecordKind kind, UsageEvent? usage, long actualMicros, CancellationToken cancellationToken)
    {
        await slot.Ended.Task.ConfigureAwait(false);
        var reservation = new Reservation
        {
            RequestId = ticket.RequestId,
            KeyId = slot.Lease.KeyId,
            UserId = slot.Lease.UserId,
            KeyVersion = ticket.KeyVersion,
            BudgetKey = slot.Lease.BudgetKey,
        };
        if (kind == RecordKind.Settlement)
            await _enforcer.SettleAsync(new Settlement { Reservation = reservation, Usage = usage!, ActualCostMicros = actualMicros }, cancellationToken).ConfigureAwait(false);
        else
            await _enforcer.ReleaseAsync(reservation, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Drops the leases of a key or of every key of a user (revoked, suspended, limits changed): they stop
    /// admitting at once and are returned with the next pass.</summary>
    public void Invalidate(string? keyId = null, string? userId = null)
    {
        foreach (var pair in _pairs.Values)
        {
            lock (pair)
            {
                if (keyId is not null && pair.KeyId == keyId || userId is not null && pair.Current?.Lease.UserId == userId || keyId is null && userId is null)
                    pair.Current?.Retire();
            }
        }
        Wake();
    }

    // One pending wake-up at most: admissions arriving while a flush is being prepared ride along with it.
    private void Wake()
    {
        if (Interlocked.Exchange(ref _signaled, 1) == 0) _wake.Release();
    }

    // A settlement or release rides with the next admission's flush, or goes after SettleLinger on its own: one timer at a
    // time, so under traffic settlements cost no flush of their own and a quiet replica's usage still leaves within ms.
    private void WakeAfterLinger()
    {
        if (Volatile.Read(ref _signaled) == 1 || Interlocked.Exchange(ref _lingering, 1) == 1) return;
        _ = LingerThenWakeAsync();
    }

    private async Task LingerThenWakeAsync()
    {
        try
        {
            if (_options.SettleLinger > TimeSpan.Zero) await Task.Delay(_options.SettleLinger, _time).ConfigureAwait(false);
        }
        finally
        {
            Volatile.Write(ref _lingering, 0);
            Wake();
        }
    }

    private Task<Slot?> StartRenewal(Pair pair, AdmissionRequest request, DateTimeOffset now)
    {
        if (pair.Renewal is { IsCompleted: false } running) return running;
        var size = pair.SliceFor(request, _options, now);
        var task = GrantAsync(pair, request, size);
        pair.Renewal = task;
        // A renewal started ahead of need may fail with nobody waiting for it (Redis unreachable): observe its error.
        _ = task.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        return task;
    }

    private async Task<Slot?> GrantAsync(Pair pair, AdmissionRequest request, (long Money, long Requests, long Tokens, int Slots) size)
    {
        var grant = await _enforcer.GrantLeaseAsync(new LeaseRequest
        {
            LeaseId = Guid.NewGuid().ToString("N"),
            Key = request.Key,
            User = request.User,
            Owner = Owner,
            Money = size.Money,
            Requests = size.Requests,
            Tokens = size.Tokens,
            Slots = size.Slots,
            Ttl = _options.Ttl,
            HeadroomFactor = _options.HeadroomFactor,
        }).ConfigureAwait(false);
        lock (pair)
        {
            if (grant.Lease is not { } lease)
            {
                pair.RefusedUntil = _time.GetUtcNow() + _options.RefusedBackoff;
                RefusedCounter.Add(1);
                return null;
            }
            Interlocked.Increment(ref _granted);
            GrantedCounter.Add(1);
            var slot = new Slot(pair, lease);
            pair.Current?.Retire();
            pair.Current = slot;
            pair.Slots.Add(slot);
            return slot;
        }
    }

    private void Enqueue(Record record)
    {
        lock (_queueLock) _queue.Add(record);
    }

    private async Task RunAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(_options.SweepInterval, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            Volatile.Write(ref _signaled, 0);
            try
            {
                await FlushAsync(CancellationToken.None).ConfigureAwait(false);
                // Looking for due leases walks every pair: once per sweep interval, not per flush.
                var now = _time.GetTimestamp();
                if (_time.GetElapsedTime(_lastSweep, now) >= _options.SweepInterval)
                {
                    _lastSweep = now;
                    await EndDueLeasesAsync(CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.PassFailed(_logger, e.Message);
            }
        }
    }

    /// <summary>Writes every queued record in one script call (a group commit). Admissions waiting on it complete (or fail
    /// with the Redis error); settlements that failed to reach Redis are queued again.</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        await _flushLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            List<Record> batch;
            lock (_queueLock)
            {
                if (_queue.Count == 0) return;
                batch = _queue;
                _queue = [];
            }
            var byLease = new Dictionary<Slot, LeaseFlush>();
            foreach (var r in batch)
            {
                if (!byLease.TryGetValue(r.Slot, out var f)) byLease[r.Slot] = f = new LeaseFlush { Lease = r.Slot.Lease };
                switch (r.Kind)
                {
                    case RecordKind.Admission:
                        var q = r.Ticket.Request;
                        f.Admissions.Add(new LeasedAdmission
                        {
                            RequestId = q.RequestId, KeyVersion = q.Key.Version, ReservedMicros = q.ReservedMicros,
                            EstimatedInputTokens = q.EstimatedInputTokens, MaxOutputTokens = q.MaxOutputTokens,
                            StartedAt = r.Ticket.StartedAt, Model = q.Model, Route = q.Route, PriceVersion = q.PriceVersion,
                        });
                        break;
                    case RecordKind.Settlement:
                        f.Settlements.Add(new LeasedSettlement(r.Usage!, r.ActualMicros, AdmissionFlushed: true));
                        break;
                    default:
                        f.Releases.Add(new LeasedRelease(r.Ticket.RequestId, AdmissionFlushed: true));
                        break;
                }
            }
            HashSet<Slot>? gone = null;
            try
            {
                foreach (var chunk in byLease.Chunk(_options.MaxLeasesPerFlush))
                {
                    var results = await _enforcer.FlushLeasedAsync(Array.ConvertAll(chunk, static kv => kv.Value), cancellationToken).ConfigureAwait(false);
                    for (var i = 0; i < results.Count; i++)
                        if (!results[i].LeaseAlive) (gone ??= []).Add(chunk[i].Key);
                }
            }
            catch (Exception e)
            {
                // Part of the batch may have been written (one chunk or shard before another failed, or a call that timed
                // out after Redis ran it). Admissions fail (their requests get a 503) and are released in the next flush, so
                // one whose in-flight record did land is not left to be charged at its reservation; settlements and
                // releases go again. The flush script applies each of them only while its request is still in flight,
                // so nothing is written or counted twice.
                foreach (var r in batch)
                {
                    if (r.Kind == RecordKind.Admission)
                    {
                        r.Ticket.Recorded.TrySetException(e);
                        Enqueue(r with { Kind = RecordKind.Release });
                    }
                    else
                    {
                        Enqueue(r);
                    }
                }
                throw;
            }
            // A lease Redis no longer has got nothing written: its admissions have no in-flight record, so they must not
            // proceed (a replica that died would leave them charged nowhere), and it admits nothing more. Its settlements
            // went to the usage outbox as lost, which charges them again once the projection is rebuilt.
            if (gone is not null)
                foreach (var slot in gone)
                    lock (slot.Pair) slot.Retire();
            foreach (var r in batch)
            {
                if (r.Kind != RecordKind.Admission) continue;
                if (gone is not null && gone.Contains(r.Slot)) r.Ticket.Recorded.TrySetException(new LeaseGoneException());
                else r.Ticket.Recorded.TrySetResult();
            }
        }
        finally
        {
            _flushLock.Release();
        }
    }

    /// <summary>Returns the leases that are due: retired (replaced, invalidated or idle) with nothing in flight, or past
    /// their expiry (what is in flight is handed over).</summary>
    private async Task EndDueLeasesAsync(CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var due = new List<Slot>();
        foreach (var pair in _pairs.Values)
        {
            lock (pair)
            {
                if (pair.Current is { } current && (current.Idle(now, _options.IdleReturn) || current.Lease.ExpiresAt - _options.ExpiryMargin <= now))
                    current.Retire();
                foreach (var slot in pair.Slots)
                    if (slot.State == SlotState.Retired && (slot.InFlight == 0 || slot.Lease.ExpiresAt <= now))
                    {
                        slot.State = SlotState.Ending;
                        due.Add(slot);
                    }
                if (pair.Current?.State is SlotState.Ending) pair.Current = null;
            }
        }
        if (due.Count == 0) return;
        // Every record of an ending lease was queued before it stopped accepting: flush them, then return it.
        try
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var slot in due) lock (slot.Pair) slot.State = SlotState.Retired;
            throw;
        }
        foreach (var slot in due)
        {
            try
            {
                await _enforcer.ReturnLeaseAsync(slot.Lease, cancellationToken).ConfigureAwait(false);
                Interlocked.Increment(ref _returned);
                ReturnedCounter.Add(1);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Not returned (Redis unreachable): try again next pass; past its expiry the sweeper reclaims it.
                lock (slot.Pair) slot.State = SlotState.Retired;
                Log.ReturnFailed(_logger, slot.Lease.LeaseId, e.Message);
                continue;
            }
            lock (slot.Pair)
            {
                slot.State = SlotState.Ended;
                slot.Pair.Slots.Remove(slot);
                if (slot.Pair.Slots.Count == 0 && slot.Pair.Renewal is null or { IsCompleted: true } && slot.Pair.RefusedUntil <= now)
                {
                    slot.Pair.Removed = true;
                    _pairs.TryRemove(new(slot.Pair.KeyId, slot.Pair));
                }
            }
            slot.Ended.TrySetResult();
        }
    }

    /// <summary>Stops admitting, flushes and returns every lease (shutdown).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        try { await _loop.ConfigureAwait(false); } catch (OperationCanceledException) { }
        foreach (var pair in _pairs.Values)
            lock (pair)
                foreach (var slot in pair.Slots) slot.Retire();
        // In-flight requests of the leases returned now are handed over (settled exactly later); two passes
        // catch leases whose renewal landed during the first.
        for (var pass = 0; pass < 2; pass++)
        {
            foreach (var pair in _pairs.Values)
                lock (pair)
                    foreach (var slot in pair.Slots)
                        if (slot.State == SlotState.Active) slot.Retire();
            await ForceEndAllAsync().ConfigureAwait(false);
        }
        _stop.Dispose();
    }

    private async Task ForceEndAllAsync()
    {
        var all = new List<Slot>();
        foreach (var pair in _pairs.Values)
            lock (pair)
            {
                foreach (var slot in pair.Slots)
                    if (slot.State == SlotState.Retired)
                    {
                        slot.State = SlotState.Ending;
                        all.Add(slot);
                    }
                pair.Current = null;
            }
        await FlushAsync().ConfigureAwait(false);
        foreach (var slot in all)
        {
            try
            {
                await _enforcer.ReturnLeaseAsync(slot.Lease).ConfigureAwait(false);
                Interlocked.Increment(ref _returned);
                ReturnedCounter.Add(1);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.ReturnFailed(_logger, slot.Lease.LeaseId, e.Message);
            }
            lock (slot.Pair)
            {
                slot.State = SlotState.Ended;
                slot.Pair.Slots.Remove(slot);
            }
            slot.Ended.TrySetResult();
        }
    }

    /// <summary>A flush found the lease gone from Redis: the admission was not recorded.</summary>
    private sealed class LeaseGoneException() : Exception("The quota lease is gone from Redis (lost with its data, or reclaimed).");

    private static partial class Log
    {
        [LoggerMessage(EventId = 3201, Level = LogLevel.Warning, Message = "Quota lease pass failed: {Reason}")]
        public static partial void PassFailed(ILogger logger, string reason);

        [LoggerMessage(EventId = 3202, Level = LogLevel.Warning, Message = "Quota lease {LeaseId} could not be returned yet: {Reason}")]
        public static partial void ReturnFailed(ILogger logger, string leaseId, string reason);
    }
}
