using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Testing;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>
/// Debian's Prometheus on a loopback port with its own TSDB in a temporary folder, scraping the given targets
/// every 2 s (a scrape may take a second on a busy 2-core machine) and evaluating the TokenGate rules every second (with their <c>for:</c> durations set to 0s, so
/// an alert fires as soon as its condition holds).
/// </summary>
public sealed partial class PrometheusServer : IAsyncDisposable
{
    private readonly ChildProcess _process;
    private readonly string _dir;

    private PrometheusServer(ChildProcess process, string dir, Uri url)
    {
        _process = process;
        _dir = dir;
        Url = url;
        Http = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Url { get; }
    public HttpClient Http { get; }

    public static async Task<PrometheusServer> StartAsync(IReadOnlyDictionary<string, Uri> scrapeTargets, string rulesFile)
    {
        var dir = Path.Combine(Path.GetTempPath(), "tg-prom-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var rules = ForZeroRegex().Replace(await File.ReadAllTextAsync(rulesFile), "${indent}for: 0s");
        await File.WriteAllTextAsync(Path.Combine(dir, "rules.yaml"), rules);
        var config = new System.Text.StringBuilder("""
            global:
              scrape_interval: 2s
              scrape_timeout: 2s
              evaluation_interval: 1s
            rule_files:
              - rules.yaml
            scrape_configs:

            """);
        foreach (var (job, url) in scrapeTargets)
        {
            config.Append(CultureInfo.InvariantCulture, $"  - job_name: {job}\n    static_configs:\n      - targets: ['{url.Authority}']\n");
        }
        await File.WriteAllTextAsync(Path.Combine(dir, "prometheus.yml"), config.ToString());

        var port = ChildProcess.FreePort();
        var process = ChildProcess.Start(MonitoringFilesTests.Tool("prometheus"),
        [
            "--config.file=" + Path.Combine(dir, "prometheus.yml"),
            "--storage.tsdb.path=" + Path.Combine(dir, "data"),
            "--web.listen-address=127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "--log.level=warn",
        ], workingDirectory: dir);
        var server = new PrometheusServer(process, dir, new Uri($"http://127.0.0.1:{port}/"));
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                if (process.HasExited) throw new InvalidOperationException("prometheus exited: " + string.Join('\n', process.Stderr));
                return (await server.Http.GetAsync("-/ready")).IsSuccessStatusCode;
            }, "Prometheus to be ready", TimeSpan.FromSeconds(60));
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>GET /api/v1/{path}; returns the "data" element, or throws with Prometheus' error.</summary>
    public async Task<JsonElement> ApiAsync(string pathAndQuery)
    {
        using var response = await Http.GetAsync("api/v1/" + pathAndQuery);
        var body = await response.Content.ReadAsStringAsync();
        using var doc = JsonDocument.Parse(body);
        if (doc.RootElement.GetProperty("status").GetString() != "success")
            throw new InvalidOperationException($"{pathAndQuery}: {doc.RootElement.GetProperty("errorType").GetString()}: {doc.RootElement.GetProperty("error").GetString()}");
        return doc.RootElement.GetProperty("data").Clone();
    }

    /// <summary>Evaluates an instant query; null when it succeeded, else Prometheus' error.</summary>
    public async Task<string?> QueryErrorAsync(string expr)
    {
        try
        {
            await ApiAsync("query?query=" + Uri.EscapeDataString(expr));
            return null;
        }
        catch (InvalidOperationException e)
        {
            return e.Message;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _process.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    [GeneratedRegex(@"^(?<indent>\s+)for:\s*\S+\s*$", RegexOptions.Multiline)]
    private static partial Regex ForZeroRegex();
}
