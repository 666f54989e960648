using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.MockUpstream;
using Gateway.Operator.Sources;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>
/// A real Prometheus scrapes the proxy (management port), the operator and the portal, each its own process as
/// a deployment runs it, with the TokenGate rules loaded; failing traffic through the mock upstream makes
/// UpstreamErrorRateHigh fire, and every PromQL expression of the rules and the dashboard evaluates.
/// </summary>
public sealed class PrometheusEndToEndTests : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];
    private TestDatabase _db = null!;
    private string _root = null!;

    public async Task InitializeAsync()
    {
        _db = await TestDatabase.CreateAsync();
        _root = Path.Combine(Path.GetTempPath(), "tg-prom-e2e-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
    }

    public async Task DisposeAsync()
    {
        for (var i = _owned.Count - 1; i >= 0; i--) await _owned[i].DisposeAsync();
        await _db.DisposeAsync();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private T Own<T>(T d) where T : IAsyncDisposable
    {
        _owned.Add(d);
        return d;
    }

    [Fact]
    public async Task Prometheus_scrapes_every_process_fires_UpstreamErrorRateHigh_and_evaluates_every_query()
    {
        // The mock upstream in-process; the samples point their UpstreamAccount at it.
        var mock = MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0", "--Logging:LogLevel:Default=Warning"]);
        await mock.StartAsync();
        Own(mock);
        var mockUrl = mock.Urls.First().TrimEnd('/');
        var samples = Path.Combine(_root, "samples");
        var state = Path.Combine(_root, "state");
        Directory.CreateDirectory(samples);
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml"))
            await File.WriteAllTextAsync(Path.Combine(samples, Path.GetFileName(f)), (await File.ReadAllTextAsync(f)).Replace("http://127.0.0.1:8089", mockUrl, StringComparison.Ordinal));
        var pepper = Path.Combine(_root, "pepper");
        await File.WriteAllTextAsync(pepper, "prometheus-e2e-pepper-" + Guid.NewGuid().ToString("N"));

        var env = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = _db.ConnectionString,
            ["ConnectionStrings__Redis"] = TestEnvironment.Redis,
            ["TokenGate__PepperFile"] = pepper,
            ["TokenGate__Credentials__KeysDirectory"] = TestCredentialKeys.WriteDirectory(_root),
            ["TokenGate__Redis__KeyPrefix"] = TestEnvironment.UniqueRedisPrefix(),
            ["TokenGate__PricesDirectory"] = RepoPaths.Prices,
            ["TokenGate__Management__Urls"] = "http://127.0.0.1:0",
            ["TokenGate__BudgetMetricsInterval"] = "00:00:01",
            ["TokenGate__Ledger__MetricsInterval"] = "00:00:01",
            // Every failing request reaches the upstream instead of the account cooling down.
            ["TokenGate__Proxy__CooldownAfterFailures"] = "1000000",
        };
        var op = Own(ChildProcess.StartApp("operator/Gateway.Operator", ["--urls", "http://127.0.0.1:0", "--source", "dir:" + samples, "--state-dir", state], env));
        var proxy = Own(ChildProcess.StartApp("proxy/Gateway.Proxy", ["--urls", "http://127.0.0.1:0"], env));
        var portal = Own(ChildProcess.StartApp("portal/Gateway.Portal", ["--urls", "http://127.0.0.1:0"], env));

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var operatorUrl = (await op.ListeningUrlsAsync(1))[0];
        var (proxyUrl, proxyManagement) = await SplitAsync(await proxy.ListeningUrlsAsync(2));
        var (_, portalManagement) = await SplitAsync(await portal.ListeningUrlsAsync(2));
        foreach (var ready in new[] { operatorUrl, proxyManagement, portalManagement })
            await Eventually.TrueAsync(async () => (await http.GetAsync(new Uri(ready, "readyz"))).IsSuccessStatusCode, $"{ready} to be ready", TimeSpan.FromSeconds(60));

        var prometheus = Own(await PrometheusServer.StartAsync(new Dictionary<string, Uri>
        {
            ["tokengate-proxy"] = proxyManagement,
            ["tokengate-operator"] = operatorUrl,
            ["tokengate-portal"] = portalManagement,
        }, MonitoringFilesTests.RulesFile));

        // Every target is scraped (the management ports serve /metrics).
        await Eventually.TrueAsync(async () =>
        {
            var up = await prometheus.ApiAsync("query?query=" + Uri.EscapeDataString("up == 1"));
            return up.GetProperty("result").GetArrayLength() == 3;
        }, "Prometheus to scrape the proxy, the operator and the portal", TimeSpan.FromSeconds(60));

        var key = await Eventually.ReturnsAsync(async () =>
        {
            var s = await new FileResourceSource(samples, state).GetSecretAsync("default", "demo-apikey", CancellationToken.None);
            return s is null ? null : Encoding.UTF8.GetString(s["OPENAI_API_KEY"]);
        }, "the operator to issue the demo key", TimeSpan.FromSeconds(60));
        var api = new HttpClient { BaseAddress = proxyUrl, Timeout = TimeSpan.FromSeconds(30) };
        using var _ = api;
        await Eventually.TrueAsync(async () => (await api.SendAsync(Chat(key))).StatusCode == HttpStatusCode.OK, "the demo key to work", TimeSpan.FromSeconds(30));

        // Failing traffic (the mock answers 500) until Prometheus reports the alert firing.
        var firingJson = await Eventually.ReturnsAsync(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                using var r = await api.SendAsync(Chat(key, mockStatus: 500));
                Assert.Equal(HttpStatusCode.InternalServerError, r.StatusCode);
            }
            using (await api.SendAsync(Chat(key))) { }
            var alerts = await prometheus.ApiAsync("alerts");
            return alerts.GetProperty("alerts").EnumerateArray()
                .FirstOrDefault(a => a.GetProperty("labels").GetProperty("alertname").GetString() == "UpstreamErrorRateHigh"
                                     && a.GetProperty("state").GetString() == "firing") is { ValueKind: JsonValueKind.Object } alert ? alert.GetRawText() : null;
        }, "UpstreamErrorRateHigh to fire", TimeSpan.FromSeconds(120));
        using var firingDoc = JsonDocument.Parse(firingJson);
        var firing = firingDoc.RootElement;
        Assert.Equal("default/mock", firing.GetProperty("labels").GetProperty("upstream").GetString());
        Assert.Equal("docs/runbooks.md#upstreamerrorratehigh", firing.GetProperty("annotations").GetProperty("runbook_url").GetString());

        // The gauges the other alerts rely on reach Prometheus with the values of a healthy stack.
        foreach (var series in new[]
        {
            "tokengate_operator_leader{job=\"tokengate-operator\"} == 1",
            "tokengate_operator_redis_up{job=\"tokengate-operator\"} == 1",
            "tokengate_proxy_redis_up{job=\"tokengate-proxy\"} == 1",
            "tokengate_operator_upstream_ready{job=\"tokengate-operator\", upstream=\"default/mock\"} == 1",
            "tokengate_operator_user_budget_used_ratio{job=\"tokengate-operator\", user=\"default/demo\"} > 0",
            "tokengate_ledger_backlog_events{job=\"tokengate-operator\"} >= 0",
            "tokengate_ledger_events_total{job=\"tokengate-operator\"} > 0",
            "process_cpu_seconds_total{job=\"tokengate-portal\"}",
        })
        {
            await Eventually.TrueAsync(async () => (await prometheus.ApiAsync("query?query=" + Uri.EscapeDataString(series))).GetProperty("result").GetArrayLength() == 1,
                series, TimeSpan.FromSeconds(60));
        }

        // Every expression of the rules and the dashboard is valid PromQL over these metrics.
        var exprs = PromQueries.Rules(MonitoringFilesTests.RulesFile).Select(r => ("rule " + r.Alert, r.Expr))
            .Concat(PromQueries.DashboardPanels(JsonDocument.Parse(await File.ReadAllTextAsync(MonitoringFilesTests.DashboardFile)).RootElement)
                .SelectMany(p => p.Exprs.Select(e => ("panel " + p.Title, PromQueries.ForPrometheus(e)))))
            .ToList();
        Assert.True(exprs.Count > 30, $"only {exprs.Count} expressions");
        var errors = new List<string>();
        foreach (var (where, expr) in exprs)
        {
            if (await prometheus.QueryErrorAsync(expr) is { } error) errors.Add($"{where}: {error}\n  {expr}");
        }
        Assert.True(errors.Count == 0, string.Join('\n', errors));

        // The rule groups evaluate without errors too (a rule can fail at evaluation, e.g. on many-to-many matching).
        var groups = await prometheus.ApiAsync("rules");
        var unhealthy = groups.GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray())
            .Where(r => r.GetProperty("health").GetString() == "err")
            .Select(r => r.GetProperty("name").GetString() + ": " + r.GetProperty("lastError").GetString()).ToList();
        Assert.True(unhealthy.Count == 0, string.Join('\n', unhealthy));
    }

    private static HttpRequestMessage Chat(string key, int? mockStatus = null)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello Prometheus"}]}""", Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        if (mockStatus is { } s) req.Headers.Add("x-mock-status", s.ToString(System.Globalization.CultureInfo.InvariantCulture));
        return req;
    }

    /// <summary>Tells the public from the management listener by what they serve: only the latter has /metrics
    /// (the public one answers 404, or the portal's sign-in redirect).</summary>
    private static async Task<(Uri Public, Uri Management)> SplitAsync(IReadOnlyList<Uri> urls)
    {
        Assert.Equal(2, urls.Count);
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(30) };
        async Task<bool> ServesMetrics(Uri u)
        {
            using var r = await http.GetAsync(new Uri(u, "metrics"));
            return r.StatusCode == HttpStatusCode.OK && (await r.Content.ReadAsStringAsync()).Contains("# TYPE ", StringComparison.Ordinal);
        }
        var first = await ServesMetrics(urls[0]);
        var second = await ServesMetrics(urls[1]);
        Assert.True(first != second, $"exactly one of {urls[0]} and {urls[1]} must serve /metrics (got {first}, {second})");
        return first ? (urls[1], urls[0]) : (urls[0], urls[1]);
    }
}
