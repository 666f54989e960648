using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace Gateway.Core.Metrics;

/// <summary>How measurements of an instrument combine.</summary>
internal enum Aggregation
{
    /// <summary>Counter, UpDownCounter: measurements are increments.</summary>
    Sum,
    /// <summary>ObservableCounter, ObservableUpDownCounter: each observation is the cumulative value.</summary>
    ObservedSum,
    /// <summary>Gauge, ObservableGauge: the last value wins.</summary>
    LastValue,
    /// <summary>Histogram: explicit buckets, sum and count.</summary>
    Histogram,
}

/// <summary>One exported metric name: every instrument of that name shares it, one series per tag set.</summary>
internal sealed class MetricFamily
{
    private static readonly TagSet s_overflow = TagSet.Single("otel_metric_overflow", "true");

    private readonly ConcurrentDictionary<TagSet, Series> _series = new(TagSetComparer.Instance);
    private readonly ConcurrentDictionary<TagSet, Series>.AlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>> _lookup;
    private readonly int _maxSeries;
    private int _seriesCount;
    private int _overflowed;

    public MetricFamily(string name, string prometheusType, string? help, Aggregation aggregation, bool observable, bool integral, double[] bounds, int maxSeries)
    {
        Observable = observable;
        Name = name;
        PrometheusType = prometheusType;
        Help = help;
        Aggregation = aggregation;
        Integral = integral;
        Bounds = bounds;
        _maxSeries = maxSeries;
        _lookup = _series.GetAlternateLookup<ReadOnlySpan<KeyValuePair<string, object?>>>();
    }

    public string Name { get; }
    public string PrometheusType { get; }
    public string? Help { get; }
    public Aggregation Aggregation { get; }
    public bool Observable { get; }
    public bool Integral { get; }
    public double[] Bounds { get; }

    /// <summary>Collection number set by the exporter before observable callbacks run.</summary>
    public long Generation;

    /// <summary>Raised once, the first time the series limit is hit.</summary>
    public event Action<MetricFamily>? Overflowed;

    public Series GetSeries(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        // Hot path: an existing series is found through the span itself, with no allocation.
        if (_lookup.TryGetValue(tags, out var series)) return series;
        return AddSeries(TagSet.Create(tags));
    }

    private Series AddSeries(TagSet tags)
    {
        if (Volatile.Read(ref _seriesCount) >= _maxSeries && !_series.ContainsKey(tags))
        {
            if (Interlocked.Exchange(ref _overflowed, 1) == 0) Overflowed?.Invoke(this);
            tags = s_overflow;
        }
        var created = new Series(tags, Bounds.Length + 1);
        var series = _series.GetOrAdd(tags, created);
        if (ReferenceEquals(series, created)) Interlocked.Increment(ref _seriesCount);
        return series;
    }

    public void Record(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        switch (Aggregation)
        {
            case Aggregation.Sum:
                // Counters only go up; a negative increment is a caller bug and would break rate().
                if (value < 0 && PrometheusType == "counter") return;
                Interlocked.Add(ref GetSeries(tags).LongValue, value);
                break;
            case Aggregation.ObservedSum:
            {
                var s = GetSeries(tags);
                Volatile.Write(ref s.LongValue, value);
                Volatile.Write(ref s.Generation, Generation);
                break;
            }
            default:
                Record((double)value, tags);
                break;
        }
    }

    public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (double.IsNaN(value)) return;
        var s = GetSeries(tags);
        switch (Aggregation)
        {
            case Aggregation.Sum:
                if (value < 0 && PrometheusType == "counter") return;
                AddDouble(ref s.DoubleValue, value);
                break;
            case Aggregation.ObservedSum:
            case Aggregation.LastValue:
                Volatile.Write(ref s.DoubleValue, value);
                Volatile.Write(ref s.Generation, Generation);
                break;
            case Aggregation.Histogram:
                var i = Array.BinarySearch(Bounds, value);
                // le is inclusive: a value equal to a bound belongs to that bound's bucket.
                if (i < 0) i = ~i;
                Interlocked.Increment(ref s.Buckets[i]);
                AddDouble(ref s.DoubleValue, value);
                break;
        }
    }

    private static void AddDouble(ref double target, double value)
    {
        var current = Volatile.Read(ref target);
        while (true)
        {
            var seen = Interlocked.CompareExchange(ref target, current + value, current);
            // Compare bits: NaN never equals itself and would spin forever.
            if (BitConverter.DoubleToInt64Bits(seen) == BitConverter.DoubleToInt64Bits(current)) return;
            current = seen;
        }
    }

    public void Write(StringBuilder sb, long generation)
    {
        var rows = new List<Series>(_series.Count);
        foreach (var pair in _series)
        {
            var s = pair.Value;
            // Observable instruments report what exists now: a tag set not observed this time is gone.
            if (Observable && Volatile.Read(ref s.Generation) != generation) continue;
            rows.Add(s);
        }
        if (rows.Count == 0) return;
        rows.Sort(static (a, b) => string.CompareOrdinal(a.Tags.Labels, b.Tags.Labels));
        PrometheusText.AppendHeader(sb, Name, PrometheusType, Help);
        foreach (var s in rows)
        {
            if (Aggregation == Aggregation.Histogram) WriteHistogram(sb, s);
            else PrometheusText.AppendSample(sb, Name, s.Tags.Labels, FormatValue(s));
        }
    }

    private string FormatValue(Series s)
    {
        var l = Volatile.Read(ref s.LongValue);
        var d = Volatile.Read(ref s.DoubleValue);
        if (Integral && Aggregation != Aggregation.LastValue) return l.ToString(CultureInfo.InvariantCulture);
        return PrometheusText.FormatDouble(l + d);
    }

    private void WriteHistogram(StringBuilder sb, Series s)
    {
        var prefix = s.Tags.Labels.Length == 0 ? "" : s.Tags.Labels + ",";
        var bucketName = Name + "_bucket";
        long cumulative = 0;
        for (var i = 0; i < s.Buckets.Length; i++)
        {
            cumulative += Volatile.Read(ref s.Buckets[i]);
            var le = i < Bounds.Length ? PrometheusText.FormatDouble(Bounds[i]) : "+Inf";
            PrometheusText.AppendSample(sb, bucketName, prefix + "le=\"" + le + "\"", cumulative.ToString(CultureInfo.InvariantCulture));
        }
        PrometheusText.AppendSample(sb, Name + "_sum", s.Tags.Labels, PrometheusText.FormatDouble(Volatile.Read(ref s.DoubleValue)));
        // The count is the +Inf bucket, so the two agree even while records race with the scrape.
        PrometheusText.AppendSample(sb, Name + "_count", s.Tags.Labels, cumulative.ToString(CultureInfo.InvariantCulture));
    }
}

/// <summary>The values of one tag set. Fields are updated with Interlocked/Volatile, never under a lock.</summary>
internal sealed class Series(TagSet tags, int bucketCount)
{
    public TagSet Tags { get; } = tags;
    public long LongValue;
    public double DoubleValue;
    public long Generation;
    public readonly long[] Buckets = new long[bucketCount];
}
