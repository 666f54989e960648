using System.Diagnostics;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Runtime;

/// <summary>What a reconcile asks for next.</summary>
public readonly record struct ReconcileResult(bool Requeue = false, TimeSpan RequeueAfter = default)
{
    /// <summary>Done; forget the item's backoff.</summary>
    public static ReconcileResult Done => default;

    /// <summary>Try again with the item's rate-limited backoff.</summary>
    public static ReconcileResult RequeueNow => new(Requeue: true);

    /// <summary>Come back after a fixed delay (e.g. a key's expiry or a rotation time).</summary>
    public static ReconcileResult After(TimeSpan delay) => new(RequeueAfter: delay);
}

/// <summary>Brings one object's world in line with its spec. Must be idempotent; read the object from the cache.</summary>
public interface IReconciler<T> where T : class
{
    Task<ReconcileResult> ReconcileAsync(string? ns, string name, CancellationToken cancellationToken);
}

/// <summary>Something a <see cref="ControllerManager"/> runs while it leads.</summary>
public interface IController
{
    string Name { get; }
    Task RunAsync(CancellationToken cancellationToken);
}

/// <summary>Controller settings.</summary>
public sealed record ControllerOptions<T> where T : class
{
    /// <summary>Name used in logs and as the metrics "kind" tag; defaults to the resource kind.</summary>
    public string? Name { get; init; }
    public int Workers { get; init; } = 1;
    /// <summary>Filters for events of the primary resource (all must pass). Null: every event enqueues.</summary>
    public IReadOnlyList<IEventFilter<T>>? Filters { get; init; }
    /// <summary>Creates the per-run rate limiter; default is 5 ms → 1000 s per item.</summary>
    public Func<IRateLimiter<string>>? RateLimiterFactory { get; init; }
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Runs <see cref="ControllerOptions{T}.Workers"/> workers that take "namespace/name" keys from a
/// rate-limited work queue fed by the informer (and by watches of owned objects) and call the reconciler.
/// A key is never reconciled by two workers at once. Errors and Requeue back off per item; RequeueAfter
/// schedules; success forgets the backoff. Can be stopped and run again (e.g. on each leadership term).
/// </summary>
public sealed partial class Controller<T> : IController where T : class
{
    private readonly Informer<T> _informer;
    private readonly IReconciler<T> _reconciler;
    private readonly ControllerOptions<T> _options;
    private readonly ILogger _logger;
    private readonly List<IInformer> _watched = [];
    private volatile RateLimitingQueue<string>? _queue;

    public Controller(Informer<T> informer, IReconciler<T> reconciler, ControllerOptions<T>? options = null, ILoggerFactory? loggerFactory = null)
    {
        _informer = informer;
        _reconciler = reconciler;
        _options = options ?? new ControllerOptions<T>();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Gateway.Kubernetes.Controller");
        Name = _options.Name ?? informer.Kind;
        var filters = _options.Filters ?? [];
        informer.AddEventHandler(
            e => { if (filters.All(f => f.OnAdd(e))) Enqueue(e.Key); },
            (o, n) => { if (filters.All(f => f.OnUpdate(o, n))) Enqueue(n.Key); },
            e => { if (filters.All(f => f.OnDelete(e))) Enqueue(e.Key); });
    }

    public string Name { get; }

    /// <summary>The informer whose cache reconcilers read.</summary>
    public Informer<T> Informer => _informer;

    /// <summary>The queue of the current run, or null when not running.</summary>
    public RateLimitingQueue<string>? Queue => _queue;

    public bool IsRunning => _queue is not null;

    /// <summary>Adds a key to the running queue (ignored while stopped: a run starts by enqueuing every cached object).</summary>
    public void Enqueue(string key) => _queue?.Add(key);

    /// <summary>
    /// Declares that the reconciler reads another informer's cache: the controller starts only once that cache has
    /// listed, so a cold start never judges an object against a cache that is still empty (an ApiKey whose owner
    /// UserQuota exists but was not listed yet would otherwise be reported OwnerNotFound).
    /// </summary>
    public Controller<T> Reads(IInformer other)
    {
        if (!_watched.Contains(other)) _watched.Add(other);
        return this;
    }

    /// <summary>
    /// Watches another type and enqueues the keys <paramref name="map"/> returns for each of its changes
    /// (creations too unless <paramref name="includeAdds"/> is false).
    /// </summary>
    public Controller<T> Watches<TOther>(Informer<TOther> other, Func<ObjectEntry<TOther>, IEnumerable<string>> map, bool includeAdds = true) where TOther : class
    {
        _watched.Add(other);
        other.AddEventHandler(
            e => { if (includeAdds) EnqueueAll(map(e)); },
            (o, n) => { EnqueueAll(map(o)); EnqueueAll(map(n)); },
            e => EnqueueAll(map(e)));
        return this;
    }

    /// <summary>
    /// Watches objects this controller owns (e.g. Secrets) and enqueues their owner: the ownerReference of the
    /// primary's kind and API group (only the controller reference unless <paramref name="onlyController"/> is false).
    /// With <paramref name="includeAdds"/> false, creations do not enqueue: for objects only the reconciler itself
    /// creates, the creation event would just reconcile the owner a second time (edits and deletions still do).
    /// </summary>
    public Controller<T> Owns<TOwned>(Informer<TOwned> owned, bool onlyController = true, bool includeAdds = true) where TOwned : class
    {
        var def = _informer.Client.Definition;
        var group = def.Group;
        return Watches(owned, e => (e.Metadata.OwnerReferences ?? [])
            .Where(r => r.Kind == def.Kind && GroupOf(r.ApiVersion) == group && (!onlyController || r.Controller == true))
            .Select(r => ObjectKey.Of(def.Namespaced ? e.Metadata.Namespace : null, r.Name)), includeAdds);
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        await _informer.WaitForSyncAsync(cancellationToken);
        foreach (var w in _watched) await w.WaitForSyncAsync(cancellationToken);

        var queue = new RateLimitingQueue<string>(_options.RateLimiterFactory?.Invoke(), _options.TimeProvider);
        using var depth = OperatorMetrics.RegisterQueue(Name, () => queue.Length);
        // Publishing the queue and listing the cache happen atomically with respect to the informer's event
        // dispatch. Otherwise an object applied to the cache just before the list but dispatched just after
        // it would be enqueued twice, and reconciled twice if a worker had already taken the first copy.
        _informer.WithConsistentCache(entries =>
        {
            _queue = queue;
            foreach (var e in entries) queue.Add(e.Key);
        });
        Log.Started(_logger, Name, _options.Workers);
        try
        {
            var workers = Enumerable.Range(0, Math.Max(1, _options.Workers)).Select(_ => Task.Run(() => WorkerAsync(queue, cancellationToken), CancellationToken.None)).ToArray();
            try
            {
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // Shutting down: stop handing out work, let in-flight reconciles end (they see the cancelled token).
            }
            queue.ShutDown();
            await Task.WhenAll(workers);
        }
        finally
        {
            _queue = null;
            queue.ShutDown();
            Log.Stopped(_logger, Name);
        }
    }

    private async Task WorkerAsync(RateLimitingQueue<string> queue, CancellationToken cancellationToken)
    {
        while (true)
        {
            var next = await queue.GetAsync(CancellationToken.None);
            if (next.ShuttingDown) return;
            var key = next.Item;
            if (cancellationToken.IsCancellationRequested)
            {
                // Stopping (e.g. leadership lost): leave remaining keys for whoever runs next.
                queue.Done(key);
                continue;
            }
            await ProcessAsync(queue, key, cancellationToken);
        }
    }

    private async Task ProcessAsync(RateLimitingQueue<string> queue, string key, CancellationToken cancellationToken)
    {
        var (ns, name) = ObjectKey.Split(key);
        var kindTag = new KeyValuePair<string, object?>("kind", Name);
        var started = Stopwatch.GetTimestamp();
        string result;
        try
        {
            var r = await _reconciler.ReconcileAsync(ns, name, cancellationToken);
            if (r.RequeueAfter > TimeSpan.Zero)
            {
                queue.Forget(key);
                queue.AddAfter(key, r.RequeueAfter);
                result = "requeue_after";
            }
            else if (r.Requeue)
            {
                queue.AddRateLimited(key);
                result = "requeue";
            }
            else
            {
                queue.Forget(key);
                result = "success";
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            result = "canceled";
        }
        catch (Exception e)
        {
            queue.AddRateLimited(key);
            result = "error";
            Log.ReconcileFailed(_logger, Name, key, queue.NumRequeues(key), e);
        }
        finally
        {
            queue.Done(key);
        }
        OperatorMetrics.ReconcileDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, kindTag);
        OperatorMetrics.ReconcileTotal.Add(1, kindTag, new KeyValuePair<string, object?>("result", result));
    }

    private void EnqueueAll(IEnumerable<string> keys)
    {
        foreach (var k in keys) Enqueue(k);
    }

    private static string GroupOf(string apiVersion)
    {
        var slash = apiVersion.IndexOf('/', StringComparison.Ordinal);
        return slash < 0 ? "" : apiVersion[..slash];
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Controller {Name} started with {Workers} workers")]
        public static partial void Started(ILogger logger, string name, int workers);

        [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Controller {Name} stopped")]
        public static partial void Stopped(ILogger logger, string name);

        [LoggerMessage(EventId = 202, Level = LogLevel.Warning, Message = "Reconcile of {Name} {Key} failed (retry {Retries})")]
        public static partial void ReconcileFailed(ILogger logger, string name, string key, int retries, Exception exception);
    }
}
