using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Testing;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>The alert rules, their runbooks and unit tests, the Grafana dashboard, and the chart's copies of them.</summary>
public sealed partial class MonitoringFilesTests
{
    public static readonly string[] Alerts =
    [
        "UpstreamAccountDown", "UpstreamErrorRateHigh", "UpstreamCredentialsExpiring", "ProxyOverheadHigh",
        "ProxyErrorRateHigh", "ProxyRejectionsSpike", "UserBudgetNearlyExhausted", "UsagePipelineLagging",
        "LedgerWriterStalled", "RedisUnavailable", "OperatorReconcileErrors", "OperatorNoLeader",
        "UpstreamCredentialUnreadable",
    ];

    public static string RulesFile => Path.Combine(RepoPaths.Root, "config", "prometheus", "tokengate-rules.yaml");
    public static string DashboardFile => Path.Combine(RepoPaths.Root, "config", "grafana", "tokengate-dashboard.json");

    /// <summary>Debian's prometheus package (installed by .ci/run).</summary>
    public static string Tool(string name) =>
        new[] { "/usr/bin/" + name, "/usr/local/bin/" + name }.FirstOrDefault(File.Exists)
        ?? throw new FileNotFoundException($"{name} is not installed: apt-get install prometheus (.ci/run does).");

    private static async Task<(int Code, string Output)> RunAsync(string tool, params string[] args)
    {
        var info = new ProcessStartInfo(Tool(tool)) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoPaths.Root };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }

    [Fact]
    public async Task Promtool_accepts_the_rules()
    {
        var (code, output) = await RunAsync("promtool", "check", "rules", RulesFile);
        Assert.True(code == 0, output);
        Assert.Contains($"SUCCESS: {Alerts.Length} rules found", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Promtool_unit_tests_of_the_rules_pass()
    {
        var tests = Directory.GetFiles(Path.Combine(RepoPaths.Root, "config", "prometheus", "tests"), "*.yaml");
        Assert.NotEmpty(tests);
        var (code, output) = await RunAsync("promtool", ["test", "rules", .. tests]);
        Assert.True(code == 0, output);
        Assert.Contains("SUCCESS", output, StringComparison.Ordinal);
        // Every alert is exercised by the unit tests.
        var text = string.Concat(tests.Select(File.ReadAllText));
        foreach (var alert in Alerts) Assert.Contains("alertname: " + alert, text, StringComparison.Ordinal);
    }

    [Fact]
    public void Rules_are_exactly_the_documented_alerts_each_with_a_runbook_section()
    {
        var rules = PromQueries.Rules(RulesFile);
        Assert.Equal(Alerts.Order(StringComparer.Ordinal), rules.Select(r => r.Alert).Order(StringComparer.Ordinal));
        var runbook = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "runbooks.md"));
        var sections = HeadingRegex().Matches(runbook).Select(m => m.Groups[1].Value.Trim()).ToHashSet(StringComparer.Ordinal);
        foreach (var r in rules)
        {
            Assert.Contains(r.Alert, sections);
            Assert.Equal("docs/runbooks.md#" + r.Alert.ToLowerInvariant(), r.Annotations["runbook_url"]);
            Assert.False(string.IsNullOrWhiteSpace(r.Annotations.GetValueOrDefault("summary")), r.Alert + " has no summary");
            Assert.False(string.IsNullOrWhiteSpace(r.Annotations.GetValueOrDefault("description")), r.Alert + " has no description");
            Assert.Contains(r.Labels.GetValueOrDefault("severity"), new[] { "critical", "warning", "info" });
            // Each runbook section says what it means, how to confirm and what to do.
            var section = runbook[runbook.IndexOf("## " + r.Alert + "\n", StringComparison.Ordinal)..];
            var next = section.IndexOf("\n## ", 3, StringComparison.Ordinal);
            if (next > 0) section = section[..next];
            foreach (var part in new[] { "**What it means.**", "**How to confirm.**", "**What to do.**" }) Assert.Contains(part, section, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Dashboard_parses_and_every_panel_queries_TokenGate_metrics()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(DashboardFile));
        Assert.Equal("tokengate", doc.RootElement.GetProperty("uid").GetString());
        var panels = PromQueries.DashboardPanels(doc.RootElement).ToList();
        Assert.True(panels.Count >= 20, $"only {panels.Count} panels");
        foreach (var (title, exprs) in panels)
        {
            Assert.NotEmpty(exprs);
            Assert.All(exprs, e => Assert.Contains("tokengate_", e, StringComparison.Ordinal));
            Assert.False(string.IsNullOrWhiteSpace(title));
        }
        // The topics SREs asked for, each with at least one panel.
        var all = string.Join('\n', panels.SelectMany(p => p.Exprs));
        foreach (var metric in new[]
        {
            "tokengate_proxy_requests_total", "tokengate_proxy_request_duration_seconds_bucket", "tokengate_proxy_overhead_seconds_bucket",
            "tokengate_proxy_time_to_first_token_seconds_bucket", "tokengate_proxy_tokens_total", "tokengate_proxy_cost_usd_total",
            "tokengate_proxy_rejections_total", "tokengate_proxy_upstream_requests_total", "tokengate_proxy_upstream_cooldown",
            "tokengate_operator_upstream_ready", "tokengate_ledger_backlog_events", "tokengate_ledger_oldest_event_age_seconds",
            "tokengate_operator_reconcile_total", "tokengate_operator_leader",
        })
        {
            Assert.Contains(metric, all, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("config/prometheus/tokengate-rules.yaml", "charts/tokengate/files/tokengate-rules.yaml")]
    [InlineData("config/grafana/tokengate-dashboard.json", "charts/tokengate/files/tokengate-dashboard.json")]
    public void The_chart_ships_identical_copies(string original, string copy)
    {
        var a = File.ReadAllBytes(Path.Combine(RepoPaths.Root, original));
        var b = File.ReadAllBytes(Path.Combine(RepoPaths.Root, copy));
        Assert.True(a.AsSpan().SequenceEqual(b), $"{copy} differs from {original}: cp {original} {copy}");
    }

    [GeneratedRegex(@"^## (.+)$", RegexOptions.Multiline)]
    private static partial Regex HeadingRegex();
}
