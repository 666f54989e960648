using Gateway.Kubernetes.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Informers;

/// <summary>Receives cache changes. Called on the informer's loop: keep handlers short (enqueue, don't work).</summary>
public interface IResourceEventHandler<T> where T : class
{
    void OnAdd(ObjectEntry<T> entry);
    void OnUpdate(ObjectEntry<T> oldEntry, ObjectEntry<T> newEntry);
    void OnDelete(ObjectEntry<T> entry);
}

/// <summary>An <see cref="IResourceEventHandler{T}"/> from delegates.</summary>
public sealed class ResourceEventHandler<T>(
    Action<ObjectEntry<T>>? onAdd = null,
    Action<ObjectEntry<T>, ObjectEntry<T>>? onUpdate = null,
    Action<ObjectEntry<T>>? onDelete = null) : IResourceEventHandler<T> where T : class
{
    public void OnAdd(ObjectEntry<T> entry) => onAdd?.Invoke(entry);
    public void OnUpdate(ObjectEntry<T> oldEntry, ObjectEntry<T> newEntry) => onUpdate?.Invoke(oldEntry, newEntry);
    public void OnDelete(ObjectEntry<T> entry) => onDelete?.Invoke(entry);
}

/// <summary>Timings and scope of an informer.</summary>
public sealed record InformerOptions
{
    /// <summary>Namespace to watch; null watches all namespaces.</summary>
    public string? Namespace { get; init; }
    public string? LabelSelector { get; init; }
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(800);
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan BackoffResetAfter { get; init; } = TimeSpan.FromMinutes(2);
    public double BackoffJitter { get; init; } = 1.0;
    /// <summary>Server-side watch timeout; a random value in [min, 2×min) spreads reconnects like client-go.</summary>
    public TimeSpan MinWatchTimeout { get; init; } = TimeSpan.FromMinutes(5);
    public int PageSize { get; init; } = 500;
    /// <summary>When set, every object is re-delivered as an update this often (controller-runtime's SyncPeriod).</summary>
    public TimeSpan? ResyncPeriod { get; init; }
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>Anything that can be started and reports when its cache is complete.</summary>
public interface IInformer
{
    string Kind { get; }
    bool HasSynced { get; }
    Task WaitForSyncAsync(CancellationToken cancellationToken);
    Task RunAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A reflector plus cache: lists, then watches from the list's resourceVersion; resumes a dropped watch
/// from the last version seen (bookmarks advance it); relists on 410 Gone, replacing the cache and
/// emitting the differences; backs off like client-go's reflector on errors.
/// </summary>
public sealed partial class Informer<T> : IInformer where T : class
{
    private readonly ResourceClient<T> _client;
    private readonly InformerOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _handlersLock = new();
    private readonly List<IResourceEventHandler<T>> _handlers = [];
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private string _lastResourceVersion = "";

    public Informer(ResourceClient<T> client, InformerOptions? options = null, ILoggerFactory? loggerFactory = null)
    {
        _client = client;
        _options = options ?? new InformerOptions();
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Gateway.Kubernetes.Informer");
    }

    public CacheStore<T> Store { get; } = new();

    public ResourceClient<T> Client => _client;

    public string Kind => _client.Definition.Kind;

    public bool HasSynced => _synced.Task.IsCompleted;

    /// <summary>The resourceVersion of the last list, event or bookmark processed.</summary>
    public string LastResourceVersion => Volatile.Read(ref _lastResourceVersion);

    /// <summary>Number of full lists done (the first, plus relists after 410 Gone).</summary>
    public int ListCount { get; private set; }

    public Task WaitForSyncAsync(CancellationToken cancellationToken) => _synced.Task.WaitAsync(cancellationToken);

    /// <summary>Registers a handler; objects already cached are delivered to it as adds first.</summary>
    public void AddEventHandler(IResourceEventHandler<T> handler)
    {
        lock (_handlersLock)
        {
            _handlers.Add(handler);
            foreach (var e in Store.List()) handler.OnAdd(e);
        }
    }

    /// <summary>
    /// Runs <paramref name="action"/> with the cache's current contents while no event is being applied:
    /// every change is either fully visible in the list and already dispatched to handlers, or not yet in
    /// the list and dispatched after the action returns. A controller uses this to start its queue without
    /// an object arriving both in its initial list and, a moment later, as the same watch event.
    /// </summary>
    public void WithConsistentCache(Action<IReadOnlyList<ObjectEntry<T>>> action)
    {
        lock (_handlersLock) action(Store.List());
    }

    public void AddEventHandler(Action<ObjectEntry<T>>? onAdd = null, Action<ObjectEntry<T>, ObjectEntry<T>>? onUpdate = null, Action<ObjectEntry<T>>? onDelete = null) =>
        AddEventHandler(new ResourceEventHandler<T>(onAdd, onUpdate, onDelete));

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = new ReflectorBackoff(_options.InitialBackoff, _options.MaxBackoff, _options.BackoffResetAfter, _options.BackoffJitter, _options.TimeProvider);
        using var resync = _options.ResyncPeriod is { } period ? _options.TimeProvider.CreateTimer(_ => Resync(), null, period, period) : null;
        var needList = true;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                if (needList)
                {
                    await ListAndReplaceAsync(cancellationToken);
                    needList = false;
                }
                var started = _options.TimeProvider.GetUtcNow();
                var events = await WatchOnceAsync(cancellationToken);
                // A watch the server closes at once with nothing in it would otherwise make us spin.
                if (events == 0 && _options.TimeProvider.GetUtcNow() - started < TimeSpan.FromSeconds(1))
                {
                    await Task.Delay(backoff.Next(), _options.TimeProvider, cancellationToken);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                break;
            }
            catch (KubernetesGoneException)
            {
                Log.WatchExpired(_logger, Kind, LastResourceVersion);
                needList = true;
            }
            catch (Exception e)
            {
                // Any failure (API, network, an object that does not deserialize) is retried with backoff:
                // an informer that stopped would leave the controllers working from a frozen cache.
                var delay = backoff.Next();
                Log.ListWatchFailed(_logger, Kind, needList ? "list" : "watch", delay.TotalSeconds, e);
                try
                {
                    await Task.Delay(delay, _options.TimeProvider, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }
    }

    private async Task ListAndReplaceAsync(CancellationToken cancellationToken)
    {
        ResourceList<T> list;
        try
        {
            list = await _client.ListAllAsync(_options.Namespace, new ListOptions { LabelSelector = _options.LabelSelector }, _options.PageSize, cancellationToken);
        }
        catch (KubernetesGoneException)
        {
            // The continue token expired between pages: fall back to one unpaged, consistent list.
            list = await _client.ListAsync(_options.Namespace, new ListOptions { LabelSelector = _options.LabelSelector }, cancellationToken);
        }
        ListCount++;
        Replace(list.Entries);
        Volatile.Write(ref _lastResourceVersion, list.ResourceVersion);
        _synced.TrySetResult();
    }

    private async Task<int> WatchOnceAsync(CancellationToken cancellationToken)
    {
        var minSeconds = Math.Max(1, (int)_options.MinWatchTimeout.TotalSeconds);
        var options = new WatchOptions
        {
            ResourceVersion = LastResourceVersion,
            LabelSelector = _options.LabelSelector,
            AllowWatchBookmarks = true,
            TimeoutSeconds = minSeconds + Random.Shared.Next(minSeconds),
        };
        var count = 0;
        // A connection that died without a FIN would never end the stream; bound it by the server timeout plus slack.
        using var watchdog = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        watchdog.CancelAfter(TimeSpan.FromSeconds(options.TimeoutSeconds.Value + 30));
        try
        {
            await foreach (var ev in _client.WatchAsync(_options.Namespace, options, watchdog.Token))
            {
                count++;
                Apply(ev);
                if (ev.Metadata.ResourceVersion is { Length: > 0 } rv) Volatile.Write(ref _lastResourceVersion, rv);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The watchdog fired: resume from the last version like any ended watch.
        }
        return count;
    }

    private void Apply(WatchEvent<T> ev)
    {
        if (ev.Type == WatchEventType.Bookmark || ev.Object is null) return;
        var entry = new ObjectEntry<T>(ev.Object, ev.Metadata);
        lock (_handlersLock)
        {
            if (ev.Type == WatchEventType.Deleted)
            {
                var old = Store.Remove(entry.Key);
                Dispatch(h => h.OnDelete(entry));
                _ = old;
                return;
            }
            var previous = Store.Upsert(entry);
            if (previous is null) Dispatch(h => h.OnAdd(entry));
            else Dispatch(h => h.OnUpdate(previous, entry));
        }
    }

    /// <summary>Replaces the cache with a fresh list, emitting adds, updates and deletes for what changed.</summary>
    private void Replace(IReadOnlyList<ObjectEntry<T>> entries)
    {
        lock (_handlersLock)
        {
            var fresh = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in entries)
            {
                fresh.Add(entry.Key);
                var previous = Store.Upsert(entry);
                if (previous is null) Dispatch(h => h.OnAdd(entry));
                else if (previous.Metadata.ResourceVersion != entry.Metadata.ResourceVersion) Dispatch(h => h.OnUpdate(previous, entry));
            }
            foreach (var key in Store.Keys())
            {
                if (fresh.Contains(key)) continue;
                if (Store.Remove(key) is { } gone) Dispatch(h => h.OnDelete(gone));
            }
        }
    }

    private void Resync()
    {
        lock (_handlersLock)
        {
            foreach (var e in Store.List()) Dispatch(h => h.OnUpdate(e, e));
        }
    }

    private void Dispatch(Action<IResourceEventHandler<T>> action)
    {
        foreach (var h in _handlers)
        {
            try
            {
                action(h);
            }
            catch (Exception e)
            {
                // One faulty handler must not stop the cache from being maintained.
                Log.HandlerFailed(_logger, Kind, e);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "{Kind} watch expired at resourceVersion {ResourceVersion}; relisting")]
        public static partial void WatchExpired(ILogger logger, string kind, string resourceVersion);

        [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "{Kind} {Phase} failed; retrying in {DelaySeconds:F1}s")]
        public static partial void ListWatchFailed(ILogger logger, string kind, string phase, double delaySeconds, Exception exception);

        [LoggerMessage(EventId = 102, Level = LogLevel.Error, Message = "{Kind} event handler failed")]
        public static partial void HandlerFailed(ILogger logger, string kind, Exception exception);
    }
}
