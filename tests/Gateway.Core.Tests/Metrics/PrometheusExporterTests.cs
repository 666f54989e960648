using System.Diagnostics.Metrics;
using Gateway.Core.Metrics;

namespace Gateway.Core.Tests.Metrics;

public sealed class PrometheusExporterTests : IDisposable
{
    private readonly string _meterName = "TokenGate.Tests." + Guid.NewGuid().ToString("N");
    private readonly Meter _meter;
    private readonly PrometheusExporter _exporter;

    public PrometheusExporterTests()
    {
        _meter = new Meter(_meterName);
        _exporter = NewExporter(_meterName);
    }

    public void Dispose()
    {
        _exporter.Dispose();
        _meter.Dispose();
    }

    private static PrometheusExporter NewExporter(string prefix, Action<PrometheusExporterOptions>? configure = null)
    {
        var options = new PrometheusExporterOptions { IncludeProcessMetrics = false };
        options.MeterPrefixes.Clear();
        options.MeterPrefixes.Add(prefix);
        configure?.Invoke(options);
        return new PrometheusExporter(options);
    }

    private Exposition Scrape() => Exposition.Parse(_exporter.Collect());

    [Fact]
    public void Exports_counters_with_a_single_total_suffix_help_and_type()
    {
        var requests = _meter.CreateCounter<long>("tokengate_proxy_requests", description: "Requests served.");
        var tokens = _meter.CreateCounter<long>("tokengate_proxy_tokens_total", description: "Tokens metered.");
        requests.Add(2, new KeyValuePair<string, object?>("route", "chat"), new KeyValuePair<string, object?>("status", 200));
        requests.Add(3, new KeyValuePair<string, object?>("status", 200), new KeyValuePair<string, object?>("route", "chat"));
        requests.Add(1, new KeyValuePair<string, object?>("route", "messages"), new KeyValuePair<string, object?>("status", 429));
        tokens.Add(1500);

        var e = Scrape();
        Assert.Equal("counter", e.Types["tokengate_proxy_requests_total"]);
        Assert.Equal("Requests served.", e.Help["tokengate_proxy_requests_total"]);
        // Tag order does not matter: both records land in one series.
        Assert.Equal(5, e.Value("tokengate_proxy_requests_total", ("route", "chat"), ("status", "200")));
        Assert.Equal(1, e.Value("tokengate_proxy_requests_total", ("route", "messages"), ("status", "429")));
        Assert.Equal("counter", e.Types["tokengate_proxy_tokens_total"]);
        Assert.False(e.Types.ContainsKey("tokengate_proxy_tokens_total_total"));
        Assert.Equal(1500, e.Value("tokengate_proxy_tokens_total"));
    }

    [Fact]
    public void Exports_up_down_counters_and_gauges_as_gauges()
    {
        var inFlight = _meter.CreateUpDownCounter<int>("tokengate_proxy_in_flight_requests");
        var balance = _meter.CreateGauge<double>("tokengate_user_balance_usd");
        inFlight.Add(3);
        inFlight.Add(-1);
        balance.Record(12.5, new KeyValuePair<string, object?>("user", "demo"));
        balance.Record(7.25, new KeyValuePair<string, object?>("user", "demo"));

        var e = Scrape();
        Assert.Equal("gauge", e.Types["tokengate_proxy_in_flight_requests"]);
        Assert.Equal(2, e.Value("tokengate_proxy_in_flight_requests"));
        Assert.Equal("gauge", e.Types["tokengate_user_balance_usd"]);
        Assert.Equal(7.25, e.Value("tokengate_user_balance_usd", ("user", "demo")));
        // Help falls back to the name when the instrument has no description.
        Assert.Equal("tokengate_proxy_in_flight_requests", e.Help["tokengate_proxy_in_flight_requests"]);
    }

    [Fact]
    public void Reports_observable_instruments_with_what_they_observe_at_scrape_time()
    {
        var depth = new Dictionary<string, int> { ["ApiKey"] = 3, ["UserQuota"] = 1 };
        var total = 10L;
        _meter.CreateObservableGauge("tokengate_operator_queue_depth",
            () => depth.Select(d => new Measurement<int>(d.Value, new KeyValuePair<string, object?>("kind", d.Key))).ToArray());
        _meter.CreateObservableCounter("tokengate_ledger_entries", () => total);
        _meter.CreateObservableUpDownCounter("tokengate_proxy_open_connections", () => 4.5);

        var e = Scrape();
        Assert.Equal(3, e.Value("tokengate_operator_queue_depth", ("kind", "ApiKey")));
        Assert.Equal(1, e.Value("tokengate_operator_queue_depth", ("kind", "UserQuota")));
        Assert.Equal("counter", e.Types["tokengate_ledger_entries_total"]);
        Assert.Equal(10, e.Value("tokengate_ledger_entries_total"));
        Assert.Equal("gauge", e.Types["tokengate_proxy_open_connections"]);
        Assert.Equal(4.5, e.Value("tokengate_proxy_open_connections"));

        // An observable counter reports the cumulative value: it replaces, it does not add up.
        total = 25;
        depth.Remove("UserQuota");
        e = Scrape();
        Assert.Equal(25, e.Value("tokengate_ledger_entries_total"));
        Assert.Equal(3, e.Value("tokengate_operator_queue_depth", ("kind", "ApiKey")));
        Assert.DoesNotContain(e.Named("tokengate_operator_queue_depth"), s => s.Labels["kind"] == "UserQuota");
    }

    [Fact]
    public void Writes_cumulative_histogram_buckets_sum_and_count_with_default_second_bounds()
    {
        var duration = _meter.CreateHistogram<double>("tokengate_proxy_request_duration_seconds", description: "Request duration.");
        var tag = new KeyValuePair<string, object?>("route", "chat");
        foreach (var v in new[] { 0.0005, 0.003, 0.003, 0.7, 1, 100 }) duration.Record(v, tag);

        var e = Scrape();
        Assert.Equal("histogram", e.Types["tokengate_proxy_request_duration_seconds"]);
        var buckets = e.Named("tokengate_proxy_request_duration_seconds_bucket").ToList();
        Assert.Equal(PrometheusExporterOptions.DefaultSecondsBuckets.Count + 1, buckets.Count);
        Assert.All(buckets, b => Assert.Equal("chat", b.Labels["route"]));
        double Le(string le) => e.Value("tokengate_proxy_request_duration_seconds_bucket", ("route", "chat"), ("le", le));
        Assert.Equal(1, Le("0.0005"));   // a value on a bound counts in that bound's bucket (le is inclusive)
        Assert.Equal(1, Le("0.001"));
        Assert.Equal(3, Le("0.005"));
        Assert.Equal(3, Le("0.5"));
        Assert.Equal(5, Le("1"));
        Assert.Equal(5, Le("60"));
        Assert.Equal(6, Le("+Inf"));
        Assert.Equal(6, e.Value("tokengate_proxy_request_duration_seconds_count", ("route", "chat")));
        Assert.Equal(0.0005 + 0.003 + 0.003 + 0.7 + 1 + 100, e.Value("tokengate_proxy_request_duration_seconds_sum", ("route", "chat")), 9);

        // Buckets are cumulative, so they never decrease.
        var values = buckets.Select(b => b.Value).ToList();
        Assert.Equal(values.Order(), values);
    }

    [Fact]
    public void Uses_the_instruments_advised_bucket_boundaries()
    {
        var advice = new InstrumentAdvice<long> { HistogramBucketBoundaries = [100, 1000, 10000] };
        var tokens = _meter.CreateHistogram("tokengate_proxy_request_tokens", unit: null, description: null, tags: null, advice: advice);
        tokens.Record(50);
        tokens.Record(100);
        tokens.Record(5000);
        tokens.Record(20000);

        var e = Scrape();
        var les = e.Named("tokengate_proxy_request_tokens_bucket").Select(s => s.Labels["le"]).ToList();
        Assert.Equal(["100", "1000", "10000", "+Inf"], les);
        Assert.Equal(2, e.Value("tokengate_proxy_request_tokens_bucket", ("le", "100")));
        Assert.Equal(2, e.Value("tokengate_proxy_request_tokens_bucket", ("le", "1000")));
        Assert.Equal(3, e.Value("tokengate_proxy_request_tokens_bucket", ("le", "10000")));
        Assert.Equal(4, e.Value("tokengate_proxy_request_tokens_bucket", ("le", "+Inf")));
        Assert.Equal(25150, e.Value("tokengate_proxy_request_tokens_sum"));
        Assert.Equal(4, e.Value("tokengate_proxy_request_tokens_count"));
    }

    [Fact]
    public void Escapes_label_values_and_help_and_sanitizes_names()
    {
        var counter = _meter.CreateCounter<long>("tokengate.proxy-errors", description: "Errors \\ by kind\nsecond line");
        counter.Add(1, new KeyValuePair<string, object?>("error.type", "quote\" back\\slash\nnewline"));

        var text = _exporter.Collect();
        Assert.Contains("# HELP tokengate_proxy_errors_total Errors \\\\ by kind\\nsecond line\n", text);
        Assert.Contains("tokengate_proxy_errors_total{error_type=\"quote\\\" back\\\\slash\\nnewline\"} 1\n", text);
        var e = Exposition.Parse(text);
        Assert.Equal(1, e.Value("tokengate_proxy_errors_total", ("error_type", "quote\" back\\slash\nnewline")));
        Assert.Equal("Errors \\ by kind\nsecond line", e.Help["tokengate_proxy_errors_total"]);
    }

    [Theory]
    [InlineData("tokengate_ok:name", "tokengate_ok:name")]
    [InlineData("http.server.duration", "http_server_duration")]
    [InlineData("9lives", "_9lives")]
    [InlineData("a b-c", "a_b_c")]
    public void Sanitizes_metric_names(string input, string expected) => Assert.Equal(expected, PrometheusText.SanitizeMetricName(input));

    [Fact]
    public void Sums_concurrent_records_from_many_threads_exactly()
    {
        var longs = _meter.CreateCounter<long>("tokengate_test_long");
        var doubles = _meter.CreateCounter<double>("tokengate_test_double");
        var histogram = _meter.CreateHistogram<double>("tokengate_test_seconds");
        const int threads = 8, perThread = 50_000;
        using var start = new Barrier(threads);
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            for (var i = 0; i < perThread; i++)
            {
                var shard = new KeyValuePair<string, object?>("shard", (i % 4).ToString(System.Globalization.CultureInfo.InvariantCulture));
                longs.Add(3, shard);
                doubles.Add(0.5, shard);
                histogram.Record(i / 4 % 2 == 0 ? 0.002 : 2, shard);
            }
        })).ToList();
        workers.ForEach(w => w.Start());
        workers.ForEach(w => w.Join());

        var e = Scrape();
        for (var shard = 0; shard < 4; shard++)
        {
            var s = ("shard", shard.ToString(System.Globalization.CultureInfo.InvariantCulture));
            var n = threads * perThread / 4;
            Assert.Equal(3.0 * n, e.Value("tokengate_test_long_total", s));
            Assert.Equal(0.5 * n, e.Value("tokengate_test_double_total", s));
            Assert.Equal(n, e.Value("tokengate_test_seconds_count", s));
            Assert.Equal(n / 2, e.Value("tokengate_test_seconds_bucket", s, ("le", "0.0025")));
            Assert.Equal(n, e.Value("tokengate_test_seconds_bucket", s, ("le", "2.5")));
            Assert.Equal((0.002 + 2) * n / 2, e.Value("tokengate_test_seconds_sum", s), 6);
        }
    }

    [Fact]
    public void Does_not_allocate_when_recording_into_an_existing_series()
    {
        var counter = _meter.CreateCounter<long>("tokengate_test_alloc");
        var histogram = _meter.CreateHistogram<double>("tokengate_test_alloc_seconds");
        var route = new KeyValuePair<string, object?>("route", "chat");
        var status = new KeyValuePair<string, object?>("status", "ok");
        // Warm up past the JIT's tier-up thresholds first: the runtime's own bookkeeping when a method
        // is promoted can allocate on the calling thread, which is not the exporter's doing.
        for (var i = 0; i < 1_000; i++)
        {
            counter.Add(1, route, status);
            histogram.Record(0.1, route, status);
        }

        // The fewest bytes of up to five rounds: a round can still catch the runtime tiering a method up late (a
        // loaded machine delays background compilation; seen once in a stress run: 4,232 bytes in one round), while an
        // allocation of the exporter's own shows in every round (10,000 records each).
        long allocated = long.MaxValue;
        var rounds = 0;
        while (allocated > 0 && rounds < 5)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 10_000; i++)
            {
                counter.Add(1, route, status);
                histogram.Record(0.1, route, status);
            }
            allocated = Math.Min(allocated, GC.GetAllocatedBytesForCurrentThread() - before);
            rounds++;
        }
        Assert.Equal(0, allocated);
        Assert.Equal(1_000 + rounds * 10_000, Scrape().Value("tokengate_test_alloc_total", ("route", "chat"), ("status", "ok")));
    }

    [Fact]
    public void Ignores_meters_outside_the_configured_prefixes()
    {
        using var other = new Meter("Other.Library." + Guid.NewGuid().ToString("N"));
        other.CreateCounter<long>("other_requests").Add(1);
        _meter.CreateCounter<long>("tokengate_mine").Add(1);

        var e = Scrape();
        Assert.DoesNotContain(e.Samples, s => s.Name.StartsWith("other_", StringComparison.Ordinal));
        Assert.Equal(1, e.Value("tokengate_mine_total"));
    }

    [Fact]
    public void Folds_tag_sets_beyond_the_limit_into_an_overflow_series()
    {
        using var exporter = NewExporter(_meterName, o => o.MaxSeriesPerMetric = 3);
        var counter = _meter.CreateCounter<long>("tokengate_test_cardinality");
        for (var i = 0; i < 10; i++) counter.Add(1, new KeyValuePair<string, object?>("id", i));

        var e = Exposition.Parse(exporter.Collect());
        var series = e.Named("tokengate_test_cardinality_total").ToList();
        Assert.Equal(4, series.Count);
        Assert.Equal(10, series.Sum(s => s.Value));
        Assert.Equal(7, e.Value("tokengate_test_cardinality_total", ("otel_metric_overflow", "true")));
    }

    [Fact]
    public void Counts_measurements_of_instruments_created_before_the_exporter()
    {
        using var meter = new Meter(_meterName + ".early");
        var counter = meter.CreateCounter<long>("tokengate_test_early");
        using var exporter = NewExporter(_meterName + ".early");
        counter.Add(4);
        Assert.Equal(4, Exposition.Parse(exporter.Collect()).Value("tokengate_test_early_total"));
    }

    [Fact]
    public void Includes_process_and_runtime_metrics()
    {
        using var exporter = NewExporter(_meterName, o => o.IncludeProcessMetrics = true);
        var e = Exposition.Parse(exporter.Collect());
        Assert.Equal("counter", e.Types["process_cpu_seconds_total"]);
        Assert.True(e.Value("process_cpu_seconds_total") > 0);
        Assert.True(e.Value("process_resident_memory_bytes") > 1_000_000);
        var start = e.Value("process_start_time_seconds");
        Assert.InRange(start, DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        Assert.Equal("counter", e.Types["dotnet_gc_collections_total"]);
        Assert.True(e.Value("dotnet_gc_collections_total", ("generation", "gen0")) >= e.Value("dotnet_gc_collections_total", ("generation", "gen2")));
    }
}
