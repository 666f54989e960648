namespace Gateway.Kubernetes.Runtime;

/// <summary>Decides how long an item waits before its next retry (client-go's workqueue.RateLimiter).</summary>
public interface IRateLimiter<in T>
{
    TimeSpan When(T item);
    void Forget(T item);
    int NumRequeues(T item);
}

/// <summary>Per-item exponential backoff: base × 2^failures, capped (client-go default 5 ms → 1000 s).</summary>
public sealed class ItemExponentialFailureRateLimiter<T>(TimeSpan baseDelay, TimeSpan maxDelay) : IRateLimiter<T> where T : notnull
{
    private readonly Lock _lock = new();
    private readonly Dictionary<T, int> _failures = [];

    public static ItemExponentialFailureRateLimiter<T> Default() => new(TimeSpan.FromMilliseconds(5), TimeSpan.FromSeconds(1000));

    public TimeSpan When(T item)
    {
        int exp;
        lock (_lock)
        {
            _failures.TryGetValue(item, out exp);
            _failures[item] = exp + 1;
        }
        var ticks = baseDelay.Ticks * Math.Pow(2, exp);
        return ticks >= maxDelay.Ticks ? maxDelay : TimeSpan.FromTicks((long)ticks);
    }

    public void Forget(T item)
    {
        lock (_lock) _failures.Remove(item);
    }

    public int NumRequeues(T item)
    {
        lock (_lock) return _failures.TryGetValue(item, out var n) ? n : 0;
    }
}

/// <summary>The result of <see cref="RateLimitingQueue{T}.GetAsync"/>: an item, or the signal that the queue shut down.</summary>
public readonly record struct QueueItem<T>(T Item, bool ShuttingDown);

/// <summary>
/// A work queue with client-go semantics: an item is queued at most once however often it is added; an item
/// being processed is never handed out again until <see cref="Done"/>, and if it was added meanwhile it is
/// re-queued then; delayed adds (<see cref="AddAfter"/>) and rate-limited adds (<see cref="AddRateLimited"/>)
/// with per-item backoff reset by <see cref="Forget"/>.
/// </summary>
public sealed class RateLimitingQueue<T> : IDisposable where T : notnull
{
    private readonly Lock _lock = new();
    private readonly LinkedList<T> _queue = new();
    private readonly HashSet<T> _dirty = [];
    private readonly HashSet<T> _processing = [];
    private readonly LinkedList<TaskCompletionSource<bool>> _waiters = new();
    private readonly Dictionary<T, (DateTimeOffset ReadyAt, ITimer Timer)> _waiting = [];
    private readonly IRateLimiter<T> _rateLimiter;
    private readonly TimeProvider _time;
    private TaskCompletionSource? _drained;
    private bool _shuttingDown;

    public RateLimitingQueue(IRateLimiter<T>? rateLimiter = null, TimeProvider? timeProvider = null)
    {
        _rateLimiter = rateLimiter ?? ItemExponentialFailureRateLimiter<T>.Default();
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Items ready to be handed out (not counting those in processing or waiting for a delay).</summary>
    public int Length { get { lock (_lock) return _queue.Count; } }

    /// <summary>Items queued or being processed (not those waiting for a delay to pass).</summary>
    public int Outstanding { get { lock (_lock) return _dirty.Count + _processing.Count; } }

    public bool ShuttingDown { get { lock (_lock) return _shuttingDown; } }

    public void Add(T item)
    {
        lock (_lock)
        {
            if (_shuttingDown || !_dirty.Add(item)) return;
            if (_processing.Contains(item)) return;
            _queue.AddLast(item);
            WakeOne();
        }
    }

    /// <summary>Adds the item after a delay; of several pending delays for one item the earliest wins.</summary>
    public void AddAfter(T item, TimeSpan delay)
    {
        if (delay <= TimeSpan.Zero)
        {
            Add(item);
            return;
        }
        lock (_lock)
        {
            if (_shuttingDown) return;
            var readyAt = _time.GetUtcNow() + delay;
            if (_waiting.TryGetValue(item, out var existing))
            {
                if (existing.ReadyAt <= readyAt) return;
                existing.Timer.Dispose();
            }
            ITimer? timer = null;
            timer = _time.CreateTimer(_ => Fire(item, timer!), null, delay, Timeout.InfiniteTimeSpan);
            _waiting[item] = (readyAt, timer);
        }
    }

    private void Fire(T item, ITimer timer)
    {
        lock (_lock)
        {
            // A timer replaced by an earlier AddAfter must not add a second time.
            if (!_waiting.TryGetValue(item, out var current) || !ReferenceEquals(current.Timer, timer)) return;
            _waiting.Remove(item);
        }
        timer.Dispose();
        Add(item);
    }

    /// <summary>Adds the item after its rate limiter's backoff (grows with each call until <see cref="Forget"/>).</summary>
    public void AddRateLimited(T item) => AddAfter(item, _rateLimiter.When(item));

    /// <summary>Resets the item's backoff (after a successful reconcile).</summary>
    public void Forget(T item) => _rateLimiter.Forget(item);

    public int NumRequeues(T item) => _rateLimiter.NumRequeues(item);

    /// <summary>Waits for an item. After shut-down, remaining items are still handed out, then ShuttingDown is returned.</summary>
    public async ValueTask<QueueItem<T>> GetAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            TaskCompletionSource<bool> waiter;
            lock (_lock)
            {
                if (_queue.First is { } first)
                {
                    _queue.RemoveFirst();
                    _processing.Add(first.Value);
                    _dirty.Remove(first.Value);
                    return new QueueItem<T>(first.Value, false);
                }
                if (_shuttingDown) return new QueueItem<T>(default!, true);
                waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                _waiters.AddLast(waiter);
            }
            await using (cancellationToken.Register(() => waiter.TrySetCanceled(cancellationToken)))
            {
                await waiter.Task;
            }
        }
    }

    /// <summary>Marks the item processed; if it was added while processing, it is queued again now.</summary>
    public void Done(T item)
    {
        lock (_lock)
        {
            _processing.Remove(item);
            if (_dirty.Contains(item))
            {
                _queue.AddLast(item);
                WakeOne();
            }
            if (_processing.Count == 0) _drained?.TrySetResult();
        }
    }

    /// <summary>Stops accepting new items and wakes all waiting getters.</summary>
    public void ShutDown()
    {
        lock (_lock)
        {
            if (_shuttingDown) return;
            _shuttingDown = true;
            foreach (var (_, w) in _waiting) w.Timer.Dispose();
            _waiting.Clear();
            foreach (var w in _waiters) w.TrySetResult(false);
            _waiters.Clear();
        }
    }

    /// <summary>Shuts down and waits until every item being processed is Done.</summary>
    public Task ShutDownWithDrainAsync(CancellationToken cancellationToken = default)
    {
        ShutDown();
        lock (_lock)
        {
            if (_processing.Count == 0) return Task.CompletedTask;
            _drained ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            return _drained.Task.WaitAsync(cancellationToken);
        }
    }

    private void WakeOne()
    {
        while (_waiters.First is { } first)
        {
            _waiters.RemoveFirst();
            if (first.Value.TrySetResult(true)) return;
        }
    }

    public void Dispose() => ShutDown();
}
