using Gateway.Core.Metrics;
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

    private async Task<UpstreamAccountStatus> ReconcileAsync()
    {
        var reconciler = new TokenGateReconciler(_f.DbFactory, _f.Projection, _f.Hasher, Options.Create(new OperatorOptions()), TimeProvider.System,
            NullLogger<TokenGateReconciler>.Instance, healthBoard: _board);
        var ua = _f.Source.Load().UpstreamAccounts.Single();
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
}
