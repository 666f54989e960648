using System.Diagnostics.Metrics;
using System.Globalization;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Operator.Ledger;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Telemetry;

/// <summary>
/// Measures the usage stream's backlog every TokenGate:Ledger:MetricsInterval: the ledger writer deletes what it
/// persisted, so the stream's length is what is still waiting for PostgreSQL, and its first entry's id (the
/// proxy's XADD time) tells how old the oldest waiting event is. Gauges tokengate_ledger_backlog_events and
/// tokengate_ledger_oldest_event_age_seconds; runs beside the ledger writer (leader only), and reports nothing
/// while it cannot measure (Redis down: RedisUnavailable covers that).
/// </summary>
public sealed partial class UsageBacklogMonitor : BackgroundService
{
    private readonly IRedisClient _redis;
    private readonly ProjectionKeys _keys;
    private readonly TimeProvider _time;
    private readonly TimeSpan _interval;
    private readonly ILogger<UsageBacklogMonitor> _logger;
    private readonly Meter _meter = new("TokenGate.Ledger");
    private volatile Snapshot? _last;

    private sealed record Snapshot(long Events, double OldestAgeSeconds);

    public UsageBacklogMonitor(IRedisClient redis, ProjectionKeys keys, IOptions<LedgerOptions> options, TimeProvider time, ILogger<UsageBacklogMonitor> logger)
    {
        _redis = redis;
        _keys = keys;
        _time = time;
        _interval = options.Value.MetricsInterval;
        _logger = logger;
        _meter.CreateObservableGauge("tokengate_ledger_backlog_events", () => _last is { } s ? [new Measurement<long>(s.Events)] : Array.Empty<Measurement<long>>(),
            description: "Usage events in the Redis stream not yet persisted to PostgreSQL.");
        _meter.CreateObservableGauge("tokengate_ledger_oldest_event_age_seconds", () => _last is { } s ? [new Measurement<double>(s.OldestAgeSeconds)] : Array.Empty<Measurement<double>>(),
            description: "Age of the oldest usage event not yet persisted (0 when the stream is empty).");
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_interval, _time);
        try
        {
            do
            {
                try { _last = await MeasureAsync(stoppingToken); }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    _last = null;
                    LogFailed(_logger, e.GetType().Name, e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping (or leadership ended).
        }
        finally
        {
            _last = null;
        }
    }

    /// <summary>Every shard's usage stream: the entries in all of them, and the age of the oldest.</summary>
    private async Task<Snapshot> MeasureAsync(CancellationToken ct)
    {
        var shards = await Task.WhenAll(ProjectionKeys.Shards.Select(shard => MeasureAsync(_keys.UsageStream(shard), ct)));
        return new Snapshot(shards.Sum(s => s.Events), shards.Max(s => s.OldestAgeSeconds));
    }

    private async Task<Snapshot> MeasureAsync(string stream, CancellationToken ct)
    {
        var length = await _redis.StreamLengthAsync(stream, ct);
        if (length == 0) return new Snapshot(0, 0);
        var first = await _redis.ExecuteAsync("XRANGE", [stream, "-", "+", "COUNT", 1], ct);
        var age = 0.0;
        if (first.Items is { Count: > 0 } items && items[0].Items[0].AsString() is { } id
            && long.TryParse(id.AsSpan(0, id.IndexOf('-', StringComparison.Ordinal)), NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            age = Math.Max(0, (_time.GetUtcNow().ToUnixTimeMilliseconds() - ms) / 1000.0);
        }
        return new Snapshot(length, age);
    }

    public override void Dispose()
    {
        _meter.Dispose();
        base.Dispose();
    }

    [LoggerMessage(410, LogLevel.Warning, "Measuring the usage backlog failed ({Error}: {Message})")]
    private static partial void LogFailed(ILogger logger, string error, string message);
}
