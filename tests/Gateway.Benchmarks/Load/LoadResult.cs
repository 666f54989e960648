using System.Diagnostics;
using System.Globalization;

namespace Gateway.Benchmarks.Load;

/// <summary>The outcome of one load run.</summary>
public sealed record LoadResult(int Requests, int Errors, double RequestsPerSecond, Percentiles Latency, Percentiles SendLag)
{
    /// <summary>The tab-separated line config/local/bench.sh collects (the wrk Lua script prints the same).</summary>
    public string ToResultLine(string label) => string.Join('\t',
        "RESULT", label,
        F(RequestsPerSecond, 1), F(Latency.P50, 3), F(Latency.P99, 3), F(Latency.Mean, 3),
        Errors.ToString(CultureInfo.InvariantCulture), Requests.ToString(CultureInfo.InvariantCulture), F(Latency.Max, 3));

    private static string F(double value, int digits) => value.ToString("F" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
}

/// <summary>Exact percentiles in milliseconds from every recorded sample (a run holds at most a few 10k).</summary>
public sealed record Percentiles(double P50, double P90, double P99, double P999, double Max, double Mean)
{
    public static Percentiles FromTicks(long[] samples)
    {
        if (samples.Length == 0) return new Percentiles(0, 0, 0, 0, 0, 0);
        var sorted = (long[])samples.Clone();
        Array.Sort(sorted);
        double total = 0;
        foreach (var s in sorted) total += s;
        return new Percentiles(Ms(At(sorted, 0.50)), Ms(At(sorted, 0.90)), Ms(At(sorted, 0.99)), Ms(At(sorted, 0.999)), Ms(sorted[^1]), Ms(total / sorted.Length));
    }

    // Nearest-rank: the smallest sample with at least q of all samples at or below it.
    private static long At(long[] sorted, double q) => sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static double Ms(double ticks) => ticks * 1000.0 / Stopwatch.Frequency;
}
