using System.Globalization;

namespace Gateway.Benchmarks.Load;

/// <summary><c>load</c>: warm up, run at a fixed rate, print one RESULT line and a human summary on stderr.</summary>
public static class OpenLoopCommand
{
    public static async Task<int> RunAsync(CommandLine args)
    {
        var url = new Uri(args.Required("url"));
        var rate = args.Number("rate", 1000);
        var duration = TimeSpan.FromSeconds(args.Number("duration", 10));
        var warmup = TimeSpan.FromSeconds(args.Number("warmup", 3));
        var timeout = TimeSpan.FromSeconds(args.Number("timeout", 10));
        var connections = (int)args.Number("connections", 64);
        var label = args.Optional("label") ?? url.AbsolutePath;
        var bodyFile = args.Optional("body-file");
        var body = bodyFile is null ? [] : await File.ReadAllBytesAsync(bodyFile);
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var h in args.All("header"))
        {
            var colon = h.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0) throw new ArgumentException($"--header must be 'Name: value' (got a value without a colon).");
            headers.Add(new(h[..colon].Trim(), h[(colon + 1)..].Trim()));
        }

        // The credential comes from the environment so it never shows up in a process listing.
        var bearerEnv = args.Optional("bearer-env");
        if (bearerEnv is not null)
        {
            var token = Environment.GetEnvironmentVariable(bearerEnv);
            if (string.IsNullOrEmpty(token)) throw new ArgumentException($"--bearer-env: the environment variable {bearerEnv} is empty.");
            headers.Add(new("Authorization", "Bearer " + token));
        }

        using var generator = new OpenLoopGenerator(url, body, headers, connections);
        await generator.RunAsync(rate, warmup, timeout);
        var result = await generator.RunAsync(rate, duration, timeout);
        Console.WriteLine(result.ToResultLine(label));
        await Console.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"  {label}: {result.RequestsPerSecond:F0} req/s, p50 {result.Latency.P50:F3} ms, p90 {result.Latency.P90:F3} ms, p99 {result.Latency.P99:F3} ms, max {result.Latency.Max:F3} ms, errors {result.Errors}/{result.Requests}, send lag p99 {result.SendLag.P99:F3} ms"));
        return 0;
    }
}
