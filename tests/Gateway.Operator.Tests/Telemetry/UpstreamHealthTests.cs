using Gateway.Core.Metrics;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Reconcilers;
using Gateway.Operator.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Tests.Telemetry;

/// <summary>Issue #10, item 8: an UpstreamAccount's Healthy condition, cooldownUntil and tokengate_upstream_healthy
/// come from the proxies' shared cooldowns and the account's recent requests.</summary>
public sealed class UpstreamHealthTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private UpstreamHealthBoard _board = null!;
    private PrometheusExporter _exporter = null!;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        _board = new UpstreamHealthBoard();
        _exporter = new PrometheusExporter(new PrometheusExporterOptions { IncludeProcessMetrics = false });
    }

    public async Task DisposeAsync()
    {
        _exporter.Dispose();
        _board.Dispose();
        await _f.DisposeAsync();
    }

    private UpstreamHealthMonitor Monitor() => new(_f.DbFactory, _f.Redis, _f.Keys, _board, Options.Create(new OperatorOptions()), TimeProvider.System, NullLogger<UpstreamHealthMonitor>.Instance);

    private async Task<UpstreamAccountStatus> ReconcileAsync(Action<UpstreamAccountSpec>? change = null, OperatorStateMetrics? metrics = null)
    {
        var reconciler = new TokenGateReconciler(_f.DbFactory, _f.Projection, _f.Hasher, Options.Create(new OperatorOptions()), TimeProvider.System,
            NullLogger<TokenGateReconciler>.Instance, metrics, healthBoard: _board);
        var ua = _f.Source.Load().UpstreamAccounts.Single();
        change?.Invoke(ua.Spec);
        return (await reconciler.ReconcileUpstreamAsync(ua, _f.Source, CancellationToken.None)).Status;
    }

    private async Task RequestsAsync(params int[] statuses)
    {
        await using var db = _f.Db();
        foreach (var status in statuses)
        {
            var at = DateTimeOffset.UtcNow.AddMinutes(-1);
            db.UsageLog.Add(new UsageLogRow
            {
                RequestId = "h-" + Guid.NewGuid().ToString("N"), Model = "gpt-4o-mini", Upstream = "default/mock", Route = "/v1/chat/completions",
                StartedAt = at, CreatedAt = at, Status = status, DurationMs = 5,
            });
        }
        await db.SaveChangesAsync();
    }

    private string[] Gauge() => _exporter.Collect().Split('\n').Where(l => l.StartsWith("tokengate_upstream_healthy{", StringComparison.Ordinal)).ToArray();

    [Fact]
    public async Task Health_follows_recent_requests_and_the_shared_cooldown()
    {
        var changed = new List<string>();
        _board.Changed += changed.Add;

        // No traffic: unknown, and no gauge series.
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        var status = await ReconcileAsync();
        Assert.Equal(("Unknown", "NoRecentTraffic"), (Conditions.Find(status.Conditions, "Healthy")!.Status, Conditions.Find(status.Conditions, "Healthy")!.Reason));
        Assert.Empty(Gauge());
        Assert.Equal(["default/mock"], changed);

        // Requests succeed (a client's 4xx is not the upstream's fault).
        await RequestsAsync(200, 200, 401, 502);
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        status = await ReconcileAsync();
        Assert.Equal(("True", "RequestsSucceeding"), (Conditions.Find(status.Conditions, "Healthy")!.Status, Conditions.Find(status.Conditions, "Healthy")!.Reason));
        Assert.Equal(["tokengate_upstream_healthy{upstream=\"default/mock\"} 1"], Gauge());

        // Most requests fail.
        await RequestsAsync(502, 503, 429, 500);
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        status = await ReconcileAsync();
        var healthy = Conditions.Find(status.Conditions, "Healthy")!;
        Assert.Equal(("False", "FailingRequests"), (healthy.Status, healthy.Reason));
        Assert.Contains("5 of 8 requests", healthy.Message, StringComparison.Ordinal);
        Assert.Equal(["tokengate_upstream_healthy{upstream=\"default/mock\"} 0"], Gauge());
        Assert.Null(status.CooldownUntil);

        // The proxies cool it down (an upstream 429 with Retry-After): that wins, with its end in the status.
        var until = DateTimeOffset.FromUnixTimeMilliseconds(DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeMilliseconds());
        await _f.Redis.ExecuteAsync("SET", [_f.Keys.UpstreamCooldown("default/mock"), until.ToUnixTimeMilliseconds(), "EX", 600]);
        changed.Clear();
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        Assert.Equal(["default/mock"], changed);
        status = await ReconcileAsync();
        Assert.Equal(("False", "CoolingDown"), (Conditions.Find(status.Conditions, "Healthy")!.Status, Conditions.Find(status.Conditions, "Healthy")!.Reason));
        Assert.Equal(until, status.CooldownUntil);

        // The same verdict again changes nothing (no reconcile is asked for).
        changed.Clear();
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        Assert.Empty(changed);

        // Leadership lost: the verdicts and the gauge go.
        _board.Clear();
        Assert.Empty(Gauge());
    }

    [Fact]
    public async Task Window_usage_and_headroom_reach_status_and_the_usage_ratio_gauge()
    {
        using var metrics = new OperatorStateMetrics(_f.Redis);
        using var leader = OperatorMetrics.RegisterElector(static () => true);
        void Windows(UpstreamAccountSpec spec) => spec.Windows =
        [
            new UpstreamWindow { Period = "5h", Requests = 1000 },
            new UpstreamWindow { Period = "7d", Requests = 10_000, Tokens = 1_000_000 },
        ];

        // What the proxies counted (400 requests, 900,000 tokens).
        await UpstreamWindows.AddAndReadAsync(_f.Redis, _f.Keys, [new WindowDelta("default/mock", 400, 900_000)], default);
        var changed = new List<string>();
        _board.Changed += changed.Add;
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        var status = await ReconcileAsync(Windows, metrics);

        Assert.Equal(400, status.RequestsToday);
        Assert.Equal(["5h", "1d", "7d"], status.Windows!.Select(w => w.Period));
        var fiveHours = status.Windows!.Single(w => w.Period == "5h");
        Assert.Equal((400L, 900_000L, 1000L, (long?)null, 0.6), (fiveHours.Requests, fiveHours.Tokens, fiveHours.RequestsLimit!.Value, fiveHours.TokensLimit, fiveHours.Headroom!.Value));
        // The week's tokens are the tighter limit: 10 % left.
        Assert.Equal(0.1, status.Windows!.Single(w => w.Period == "7d").Headroom!.Value, 9);
        // Windows without a limit carry figures, no headroom.
        Assert.Null(status.Windows!.Single(w => w.Period == "1d").Headroom);
        var ratios = _exporter.Collect().Split('\n').Where(l => l.StartsWith("tokengate_upstream_window_usage_ratio{", StringComparison.Ordinal)).Order().ToArray();
        Assert.Equal(
        [
            "tokengate_upstream_window_usage_ratio{upstream=\"default/mock\",window=\"5h\"} 0.4",
            "tokengate_upstream_window_usage_ratio{upstream=\"default/mock\",window=\"7d\"} 0.9",
        ], ratios);

        // New traffic changes the verdict, so the account's status is reconciled again; no traffic, no reconcile.
        changed.Clear();
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        Assert.Empty(changed);
        await UpstreamWindows.AddAndReadAsync(_f.Redis, _f.Keys, [new WindowDelta("default/mock", 1, 10)], default);
        _board.Publish(await Monitor().MeasureAsync(CancellationToken.None));
        Assert.Equal(["default/mock"], changed);
        Assert.Equal(401, (await ReconcileAsync(Windows, metrics)).RequestsToday);

        // Deleted: its series go.
        metrics.RemoveUpstream("default/mock");
        Assert.DoesNotContain(_exporter.Collect().Split('\n'), l => l.StartsWith("tokengate_upstream_window_usage_ratio{", StringComparison.Ordinal));
    }

    [Fact]
    public void A_change_in_the_minute_window_alone_asks_for_no_reconcile()
    {
        var changed = new List<string>();
        _board.Changed += changed.Add;
        UpstreamHealthVerdict Verdict(long minute, long fiveHours) =>
            new("True", "RequestsSucceeding", "ok", null, new WindowTotals([minute, fiveHours, fiveHours, fiveHours], [0, 0, 0, 0]));
        _board.Publish(new Dictionary<string, UpstreamHealthVerdict> { ["default/a"] = Verdict(5, 5) });
        changed.Clear();
        _board.Publish(new Dictionary<string, UpstreamHealthVerdict> { ["default/a"] = Verdict(0, 5) });
        Assert.Empty(changed);
        _board.Publish(new Dictionary<string, UpstreamHealthVerdict> { ["default/a"] = Verdict(1, 6) });
        Assert.Equal(["default/a"], changed);
    }
}
