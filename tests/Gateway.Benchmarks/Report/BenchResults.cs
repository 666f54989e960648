using System.Globalization;

namespace Gateway.Benchmarks.Report;

/// <summary>One measured run: kind (fixed or max), mode (json or stream), target (direct, nginx or proxy).</summary>
public sealed record RunFigures(string Kind, string Mode, string Target, double RequestsPerSecond, double P50, double P99, double Mean, long Errors, long Requests, double Max);

/// <summary>The lines config/local/bench.sh collected: RESULT, ALLOC, OVERHEAD and INFO (tab-separated).</summary>
public sealed class BenchResults
{
    public List<RunFigures> Runs { get; } = [];
    /// <summary>mode → (bytes allocated per request, requests counted).</summary>
    public Dictionary<string, (double BytesPerRequest, long Requests)> Allocation { get; } = new(StringComparer.Ordinal);
    /// <summary>mode → the same for the bare .NET forwarder.</summary>
    public Dictionary<string, (double BytesPerRequest, long Requests)> ForwarderAllocation { get; } = new(StringComparer.Ordinal);
    /// <summary>mode → the proxy's own mean overhead (tokengate_proxy_overhead_seconds) in ms.</summary>
    public Dictionary<string, double> ProxyOverheadMs { get; } = new(StringComparer.Ordinal);
    /// <summary>(mode, target) → CPU µs per request during the maximum-rate run, by process (see <see cref="CpuParts"/>).</summary>
    public Dictionary<(string Mode, string Target), double[]> CpuPerRequest { get; } = [];
    public static readonly string[] CpuParts = ["proxy", "mock", "nginx", "forwarder", "operator", "redis", "postgres", "wrk"];
    /// <summary>Ordered machine and parameter facts.</summary>
    public List<KeyValuePair<string, string>> Info { get; } = [];

    public string InfoValue(string key, string fallback = "?")
    {
        foreach (var (k, v) in Info) if (k == key) return v;
        return fallback;
    }

    /// <summary>
    /// The run for this kind, mode and target; when the script repeated it (fixed-rate rounds), the
    /// median run — by p99 for fixed-rate runs, by requests/s for maximum-rate runs — whole, so its
    /// figures stay from one run. An even count takes the worse of the two middle runs.
    /// </summary>
    public RunFigures? Find(string kind, string mode, string target)
    {
        var matching = Runs.Where(r => r.Kind == kind && r.Mode == mode && r.Target == target).ToList();
        if (matching.Count <= 1) return matching.Count == 0 ? null : matching[0];
        var ordered = kind == "max"
            ? matching.OrderByDescending(r => r.RequestsPerSecond).ToList()
            : matching.OrderBy(r => r.P99).ToList();
        return ordered[matching.Count / 2];
    }

    /// <summary>How many runs there are for this kind, mode and target.</summary>
    public int Count(string kind, string mode, string target) =>
        Runs.Count(r => r.Kind == kind && r.Mode == mode && r.Target == target);

    public static BenchResults Load(string path)
    {
        var results = new BenchResults();
        foreach (var line in File.ReadLines(path))
        {
            var f = line.Split('\t');
            switch (f[0])
            {
                case "RESULT" when f.Length >= 9:
                    var label = f[1].Split('/');
                    if (label.Length != 3) continue;
                    results.Runs.Add(new RunFigures(label[0], label[1], label[2], D(f[2]), D(f[3]), D(f[4]), D(f[5]), (long)D(f[6]), (long)D(f[7]), D(f[8])));
                    break;
                case "ALLOC" when f.Length >= 4:
                    results.Allocation[f[1]] = (D(f[2]), (long)D(f[3]));
                    break;
                case "ALLOC_FORWARDER" when f.Length >= 4:
                    results.ForwarderAllocation[f[1]] = (D(f[2]), (long)D(f[3]));
                    break;
                case "OVERHEAD" when f.Length >= 3:
                    results.ProxyOverheadMs[f[1]] = D(f[2]);
                    break;
                case "CPU" when f.Length >= 3 + CpuParts.Length:
                    results.CpuPerRequest[(f[1], f[2])] = [.. f[3..(3 + CpuParts.Length)].Select(D)];
                    break;
                case "INFO" when f.Length >= 3:
                    results.Info.Add(new(f[1], string.Join('\t', f[2..])));
                    break;
            }
        }
        return results;
    }

    private static double D(string s) => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : double.NaN;
}
