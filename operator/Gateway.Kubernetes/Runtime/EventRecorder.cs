using System.Globalization;
using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Kubernetes.Runtime;

/// <summary>Event recorder settings (defaults follow client-go's recorder).</summary>
public sealed record EventRecorderOptions
{
    /// <summary>source.component / reportingComponent, e.g. "tokengate-operator".</summary>
    public required string Component { get; init; }
    /// <summary>source.host / reportingInstance (pod name); defaults to the machine name.</summary>
    public string? Instance { get; init; }
    /// <summary>Spam filter: events an object may burst before being limited.</summary>
    public int Burst { get; init; } = 25;
    /// <summary>Spam filter: one token comes back this often (client-go: 1 per 5 minutes).</summary>
    public TimeSpan RefillInterval { get; init; } = TimeSpan.FromMinutes(5);
    /// <summary>How many distinct events are remembered for count aggregation.</summary>
    public int CacheSize { get; init; } = 4096;
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// Records core/v1 Events about objects. An identical event (same object, type, reason, message) patches the
/// existing Event's count and lastTimestamp instead of creating another; a token bucket per object drops
/// floods. Never throws: failing to record an event must not fail a reconcile.
/// </summary>
public sealed partial class EventRecorder
{
    public const string Normal = "Normal";
    public const string Warning = "Warning";

    private readonly ResourceClient<Event> _events;
    private readonly EventRecorderOptions _options;
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, CachedEvent> _cache = new(StringComparer.Ordinal);
    private readonly LinkedList<string> _lru = new();
    private readonly Dictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

    public EventRecorder(KubernetesClient client, EventRecorderOptions options, ILoggerFactory? loggerFactory = null)
    {
        _events = client.Resource<Event>(ResourceDefinition.Events);
        _options = options;
        _logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Gateway.Kubernetes.Events");
    }

    /// <summary>A reference to an object for <see cref="RecordAsync"/>.</summary>
    public static ObjectReference ReferenceTo(ResourceDefinition definition, ObjectMetadata metadata) => new()
    {
        ApiVersion = definition.ApiVersion,
        Kind = definition.Kind,
        Namespace = metadata.Namespace,
        Name = metadata.Name,
        Uid = metadata.Uid,
        ResourceVersion = metadata.ResourceVersion,
    };

    public Task<bool> NormalAsync(ObjectReference involved, string reason, string message, CancellationToken cancellationToken = default) =>
        RecordAsync(involved, Normal, reason, message, cancellationToken);

    public Task<bool> WarningAsync(ObjectReference involved, string reason, string message, CancellationToken cancellationToken = default) =>
        RecordAsync(involved, Warning, reason, message, cancellationToken);

    /// <summary>Records the event; returns false if the spam filter dropped it or the API call failed.</summary>
    public async Task<bool> RecordAsync(ObjectReference involved, string type, string reason, string message, CancellationToken cancellationToken = default)
    {
        var now = _options.TimeProvider.GetUtcNow();
        var objectKey = $"{involved.ApiVersion}/{involved.Kind}/{involved.Namespace}/{involved.Name}/{involved.Uid}";
        if (!TryTakeToken(objectKey, now))
        {
            Log.Throttled(_logger, reason, involved.Kind, involved.Namespace, involved.Name);
            return false;
        }
        var eventKey = string.Join('\u001f', objectKey, type, reason, message);
        var ns = string.IsNullOrEmpty(involved.Namespace) ? "default" : involved.Namespace;
        try
        {
            CachedEvent? cached;
            lock (_lock) _cache.TryGetValue(eventKey, out cached);
            if (cached is not null)
            {
                var count = cached.Count + 1;
                var patch = new JsonObject
                {
                    ["count"] = count,
                    ["lastTimestamp"] = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                };
                try
                {
                    await _events.PatchAsync(ns, cached.Name, patch, cancellationToken);
                    Remember(eventKey, cached with { Count = count });
                    return true;
                }
                catch (KubernetesNotFoundException)
                {
                    // The Event expired (TTL) or was deleted; start a new one.
                }
            }
            var ev = new Event
            {
                Metadata = new ObjectMetadata
                {
                    // client-go names events "<object>.<unix nanos in hex>".
                    Name = $"{involved.Name}.{(now.ToUnixTimeMilliseconds() * 1_000_000 + Random.Shared.Next(1_000_000)).ToString("x", CultureInfo.InvariantCulture)}",
                    Namespace = ns,
                },
                InvolvedObject = involved,
                Reason = reason,
                Message = message,
                Type = type,
                Count = 1,
                FirstTimestamp = now,
                LastTimestamp = now,
                Source = new EventSource { Component = _options.Component, Host = _options.Instance ?? Environment.MachineName },
                ReportingComponent = _options.Component,
                ReportingInstance = _options.Instance ?? Environment.MachineName,
            };
            var created = await _events.CreateAsync(ev, ns, cancellationToken);
            Remember(eventKey, new CachedEvent(created.Metadata.Name!, 1));
            return true;
        }
        catch (Exception e) when (e is KubernetesApiException or HttpRequestException or TimeoutException)
        {
            Log.RecordFailed(_logger, reason, involved.Kind, involved.Namespace, involved.Name, e);
            return false;
        }
    }

    private bool TryTakeToken(string objectKey, DateTimeOffset now)
    {
        lock (_lock)
        {
            if (!_buckets.TryGetValue(objectKey, out var b))
            {
                b = new Bucket(_options.Burst, now);
                _buckets[objectKey] = b;
            }
            var refill = _options.RefillInterval > TimeSpan.Zero ? (now - b.Last).Ticks / (double)_options.RefillInterval.Ticks : double.MaxValue;
            b.Tokens = Math.Min(_options.Burst, b.Tokens + refill);
            b.Last = now;
            if (b.Tokens < 1) return false;
            b.Tokens -= 1;
            return true;
        }
    }

    private void Remember(string key, CachedEvent value)
    {
        lock (_lock)
        {
            if (!_cache.ContainsKey(key))
            {
                _lru.AddLast(key);
                while (_lru.Count > _options.CacheSize)
                {
                    _cache.Remove(_lru.First!.Value);
                    _lru.RemoveFirst();
                }
            }
            _cache[key] = value;
        }
    }

    private sealed record CachedEvent(string Name, int Count);

    private sealed class Bucket(double tokens, DateTimeOffset last)
    {
        public double Tokens { get; set; } = tokens;
        public DateTimeOffset Last { get; set; } = last;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Level = LogLevel.Debug, Message = "Event {Reason} for {Kind} {Namespace}/{Name} dropped by the spam filter")]
        public static partial void Throttled(ILogger logger, string reason, string? kind, string? @namespace, string? name);

        [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Could not record event {Reason} for {Kind} {Namespace}/{Name}")]
        public static partial void RecordFailed(ILogger logger, string reason, string? kind, string? @namespace, string? name, Exception exception);
    }
}
