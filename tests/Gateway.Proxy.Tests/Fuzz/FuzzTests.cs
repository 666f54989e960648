using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Gateway.Proxy.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>
/// The hostile-client pass over every route (docs/reliability.md). Quick in <c>make test</c>; <c>make fuzz</c> runs the
/// same test long: FUZZ_SEED (one seed or a comma-separated list) and FUZZ_CASES (cases per seed) choose the run, and
/// FUZZ_REPORT names a file that receives the figures.
/// </summary>
public sealed partial class FuzzTests(ITestOutputHelper output)
{
    private const int BodyLimit = 1024 * 1024;
    private const int DefaultSeed = 20261207;
    private const int DefaultCases = 3000;
    // Growth of the managed heap (after a full GC) between the first quarter of the run and its end. A leak per case
    // (a buffer, a connection, a cache entry per invented model) grows with the number of cases and blows through it
    // in the long pass (200,000 cases: 1 KB a case is 200 MB). What does not grow with the cases stays under it:
    // ArrayPool keeps up to a few arrays per size per thread and per core (bodies up to 1 MB here), which on a loaded
    // machine with many pool threads was seen at up to 173 MB, then trimmed.
    private const long HeapGrowthBoundBytes = 192L * 1024 * 1024;

    [Fact]
    public async Task Every_route_answers_hostile_input_with_a_provider_error_never_a_500_a_hang_a_leak_or_an_unmetered_request()
    {
        var seeds = (Environment.GetEnvironmentVariable("FUZZ_SEED") ?? DefaultSeed.ToString(CultureInfo.InvariantCulture))
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        var cases = int.TryParse(Environment.GetEnvironmentVariable("FUZZ_CASES"), out var n) && n > 0 ? n : DefaultCases;

        await using var run = await FuzzSetup.StartAsync(BodyLimit);
        var report = new FuzzReport();
        var metricsBefore = await run.Harness.MetricsAsync();
        long heapQuarter = 0, heapEnd = 0;
        foreach (var seed in seeds)
        {
            var quarter = cases / 4;
            await run.Runner.RunAsync(seed, 0, quarter, parallelism: 4, report);
            if (heapQuarter == 0) heapQuarter = ManagedHeapAfterFullGc();
            await run.Runner.RunAsync(seed, quarter, cases - quarter, parallelism: 4, report);
        }
        heapEnd = ManagedHeapAfterFullGc();
        var metricsAfter = await run.Harness.MetricsAsync();

        var seriesBefore = Series(metricsBefore);
        var seriesAfter = Series(metricsAfter);
        var summary = Summary(seeds, cases, report, heapQuarter, heapEnd, seriesBefore.Count, seriesAfter.Count);
        output.WriteLine(summary);
        if (Environment.GetEnvironmentVariable("FUZZ_REPORT") is { Length: > 0 } file) await File.WriteAllTextAsync(file, summary);

        Assert.True(report.Findings.IsEmpty, $"{report.Findings.Count} finding(s); reproduce with FUZZ_SEED=<seed> FUZZ_CASES=<index+1>:\n"
            + string.Join("\n", report.Findings.Take(40)));
        // Every route was exercised, and some requests went all the way through (the pass is not all rejections).
        foreach (var route in FuzzRoute.All) Assert.True(report.ByRoute.ContainsKey(route.Path), "no case for " + route.Path);
        Assert.True(report.ReachedUpstream > cases / 20, $"only {report.ReachedUpstream} cases reached the upstream");
        // Metric label sets stay bounded: no invented model name becomes a label, and the series added by the whole
        // run are the bounded cross product of routes, configured models, status classes and rejection reasons.
        Assert.DoesNotContain(FuzzBodies.InventedModelMarker, metricsAfter, StringComparison.Ordinal);
        foreach (Match m in ModelLabel().Matches(metricsAfter))
            Assert.True(m.Groups[1].Value.Length == 0 || FuzzBodies.KnownModels.Contains(m.Groups[1].Value), "unexpected model label " + m.Groups[1].Value);
        var names = seriesBefore.Select(MetricName).ToHashSet(StringComparer.Ordinal);
        foreach (var s in seriesAfter) Assert.True(names.Contains(MetricName(s)) || MetricName(s).StartsWith("tokengate_", StringComparison.Ordinal), "unexpected metric " + s);
        Assert.True(seriesAfter.Count - seriesBefore.Count < 600, $"{seriesAfter.Count - seriesBefore.Count} new series");
        Assert.True(heapEnd - heapQuarter < HeapGrowthBoundBytes, $"managed heap grew {(heapEnd - heapQuarter) / 1048576} MB over the run");
    }

    private static long ManagedHeapAfterFullGc()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static HashSet<string> Series(string exposition)
    {
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var line in exposition.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#') continue;
            var space = line.LastIndexOf(' ');
            set.Add(space > 0 ? line[..space] : line);
        }
        return set;
    }

    private static string MetricName(string series)
    {
        var brace = series.IndexOf('{', StringComparison.Ordinal);
        return brace < 0 ? series : series[..brace];
    }

    [GeneratedRegex("model=\"((?:[^\"\\\\]|\\\\.)*)\"")]
    private static partial Regex ModelLabel();

    private static string Summary(int[] seeds, int cases, FuzzReport r, long heapQuarter, long heapEnd, int seriesBefore, int seriesAfter)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"fuzz: seeds {string.Join(",", seeds)}, {cases} cases per seed, {r.Cases} sent, {r.Skipped} skipped, {r.Elapsed.TotalSeconds:F1} s ({r.Cases / Math.Max(0.001, r.Elapsed.TotalSeconds):F0} cases/s)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"findings: {r.Findings.Count}; reached the upstream: {r.ReachedUpstream}");
        sb.AppendLine("by class: " + string.Join(", ", r.ByClass.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")));
        sb.AppendLine("by route: " + string.Join(", ", r.ByRoute.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {p.Value}")));
        sb.AppendLine("by status: " + string.Join(", ", r.ByStatus.OrderBy(p => p.Key).Select(p => $"{p.Key} {p.Value}")));
        sb.AppendLine(CultureInfo.InvariantCulture, $"managed heap after full GC: {heapQuarter / 1048576.0:F1} MB after the first quarter, {heapEnd / 1048576.0:F1} MB at the end");
        sb.AppendLine(CultureInfo.InvariantCulture, $"metric series: {seriesBefore} before, {seriesAfter} after");
        foreach (var f in r.Findings.Take(40)) sb.AppendLine("  " + f);
        return sb.ToString();
    }
}
