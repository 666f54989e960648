namespace Gateway.Core.Metrics;

/// <summary>Settings of <see cref="PrometheusExporter"/>.</summary>
public sealed class PrometheusExporterOptions
{
    /// <summary>Bucket upper bounds for histograms without advice, in seconds (latency-shaped).</summary>
    public static readonly IReadOnlyList<double> DefaultSecondsBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    /// <summary>Meters whose name starts with one of these (ordinal) are exported.</summary>
    public IList<string> MeterPrefixes { get; } = ["TokenGate"];

    /// <summary>Histogram bounds used when an instrument gives no <c>InstrumentAdvice</c>.</summary>
    public IReadOnlyList<double> DefaultHistogramBoundaries { get; set; } = DefaultSecondsBuckets;

    /// <summary>Adds process_* and dotnet_* metrics (CPU, memory, start time, GC, thread pool).</summary>
    public bool IncludeProcessMetrics { get; set; } = true;

    /// <summary>
    /// Tag sets kept per metric. Further tag sets are folded into one series labelled
    /// <c>otel_metric_overflow="true"</c>, so a bug that puts an unbounded value into a tag cannot
    /// exhaust memory.
    /// </summary>
    public int MaxSeriesPerMetric { get; set; } = 2000;
}
