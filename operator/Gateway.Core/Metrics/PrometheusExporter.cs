using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Metrics;

/// <summary>
/// Aggregates <see cref="System.Diagnostics.Metrics"/> instruments of the configured meters and writes
/// them in the Prometheus text format 0.0.4. Recording (the proxy hot path) takes no lock: a series is
/// found by the measurement's tag span and updated with Interlocked operations.
/// Instrument names are expected in Prometheus style with the unit in the name
/// (tokengate_proxy_request_duration_seconds); the instrument's Unit is not appended.
/// </summary>
public sealed class PrometheusExporter : IDisposable
{
    private readonly PrometheusExporterOptions _options;
    private readonly ILogger _logger;
    private readonly MeterListener _listener;
    private readonly double[] _defaultBounds;
    private readonly string[] _prefixes;
    private readonly ConcurrentDictionary<string, MetricFamily> _families = new(StringComparer.Ordinal);
    private readonly Lock _collectLock = new();
    private readonly double _processStartTime;
    private long _generation;

    public PrometheusExporter(PrometheusExporterOptions? options = null, ILogger<PrometheusExporter>? logger = null)
    {
        _options = options ?? new PrometheusExporterOptions();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _prefixes = [.. _options.MeterPrefixes];
        _defaultBounds = NormalizeBounds(_options.DefaultHistogramBoundaries);
        _processStartTime = ProcessMetrics.StartTimeSeconds();

        _listener = new MeterListener { InstrumentPublished = OnInstrumentPublished };
        _listener.SetMeasurementEventCallback<long>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<int>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<short>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<byte>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<double>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<float>(static (_, m, tags, state) => ((MetricFamily)state!).Record(m, tags));
        _listener.SetMeasurementEventCallback<decimal>(static (_, m, tags, state) => ((MetricFamily)state!).Record((double)m, tags));
        // Start publishes the instruments that already exist, so the exporter may be created late;
        // only measurements recorded before this point are missed.
        _listener.Start();
    }

    /// <summary>Runs observable callbacks and returns the whole exposition text.</summary>
    public string Collect()
    {
        var sb = new StringBuilder(4096);
        lock (_collectLock)
        {
            var generation = ++_generation;
            var families = _families.Values.ToArray();
            foreach (var f in families) f.Generation = generation;
            _listener.RecordObservableInstruments();
            Array.Sort(families, static (a, b) => string.CompareOrdinal(a.Name, b.Name));
            foreach (var f in families) f.Write(sb, generation);
        }
        if (_options.IncludeProcessMetrics) ProcessMetrics.Write(sb, _processStartTime);
        return sb.ToString();
    }

    /// <summary>Writes <see cref="Collect"/>'s text as UTF-8.</summary>
    public async Task WriteAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        var bytes = Encoding.UTF8.GetBytes(Collect());
        await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _listener.Dispose();

    private bool MatchesMeter(string meterName)
    {
        foreach (var p in _prefixes)
        {
            if (meterName.StartsWith(p, StringComparison.Ordinal)) return true;
        }
        return false;
    }

    private void OnInstrumentPublished(Instrument instrument, MeterListener listener)
    {
        if (!MatchesMeter(instrument.Meter.Name)) return;
        var type = instrument.GetType();
        if (!type.IsGenericType) return;
        var definition = type.GetGenericTypeDefinition();
        var valueType = type.GetGenericArguments()[0];
        (string promType, Aggregation aggregation, bool observable)? kind =
            definition == typeof(Counter<>) ? ("counter", Aggregation.Sum, false)
            : definition == typeof(UpDownCounter<>) ? ("gauge", Aggregation.Sum, false)
            : definition == typeof(Histogram<>) ? ("histogram", Aggregation.Histogram, false)
            : definition == typeof(Gauge<>) ? ("gauge", Aggregation.LastValue, false)
            : definition == typeof(ObservableCounter<>) ? ("counter", Aggregation.ObservedSum, true)
            : definition == typeof(ObservableUpDownCounter<>) ? ("gauge", Aggregation.ObservedSum, true)
            : definition == typeof(ObservableGauge<>) ? ("gauge", Aggregation.LastValue, true)
            : null;
        if (kind is null) return;
        var (promType, aggregation, observable) = kind.Value;

        var name = PrometheusText.SanitizeMetricName(instrument.Name);
        if (promType == "counter" && !name.EndsWith("_total", StringComparison.Ordinal)) name += "_total";
        var integral = valueType == typeof(long) || valueType == typeof(int) || valueType == typeof(short) || valueType == typeof(byte);
        var bounds = aggregation == Aggregation.Histogram ? AdvisedBounds(instrument) ?? _defaultBounds : [];

        var family = _families.GetOrAdd(name, static (n, a) => a.Self.CreateFamily(n, a), (Self: this, instrument, promType, aggregation, observable, integral, bounds));
        if (family.PrometheusType != promType || family.Aggregation != aggregation || family.Observable != observable || family.Integral != integral)
        {
            // Two instruments would write one family with different types: keep the first, say so.
            Log.InstrumentConflict(_logger, instrument.Meter.Name, instrument.Name, name);
            return;
        }
        listener.EnableMeasurementEvents(instrument, family);
    }

    private MetricFamily CreateFamily(string name, (PrometheusExporter Self, Instrument Instrument, string PromType, Aggregation Aggregation, bool Observable, bool Integral, double[] Bounds) a)
    {
        var family = new MetricFamily(name, a.PromType, a.Instrument.Description, a.Aggregation, a.Observable, a.Integral, a.Bounds, Math.Max(1, _options.MaxSeriesPerMetric));
        family.Overflowed += f => Log.SeriesLimitReached(_logger, f.Name, _options.MaxSeriesPerMetric);
        return family;
    }

    private static double[]? AdvisedBounds(Instrument instrument) => instrument switch
    {
        Instrument<double> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds(b) : null,
        Instrument<float> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        Instrument<long> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        Instrument<int> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        Instrument<short> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        Instrument<byte> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        Instrument<decimal> i => i.Advice?.HistogramBucketBoundaries is { } b ? NormalizeBounds([.. b.Select(x => (double)x)]) : null,
        _ => null,
    };

    // +Inf is always written as the last bucket; NaN and infinities are not valid finite bounds.
    private static double[] NormalizeBounds(IReadOnlyList<double> bounds) =>
        [.. bounds.Where(double.IsFinite).Distinct().Order()];
}

internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning,
        Message = "Instrument {Instrument} of meter {Meter} is not exported: metric {Metric} already exists with another instrument type.")]
    public static partial void InstrumentConflict(ILogger logger, string meter, string instrument, string metric);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning,
        Message = "Metric {Metric} reached {Limit} series; further tag sets are folded into otel_metric_overflow=\"true\". A tag probably carries an unbounded value.")]
    public static partial void SeriesLimitReached(ILogger logger, string metric, int limit);
}
