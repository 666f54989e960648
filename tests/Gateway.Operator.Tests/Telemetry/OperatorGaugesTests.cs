using System.Globalization;
using Gateway.Core.Enforcement;
using Gateway.Core.Metrics;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Ledger;
using Gateway.Operator.Reconcilers;
using Gateway.Operator.Sources;
using Gateway.Operator.Telemetry;
using Gateway.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Tests.Telemetry;

/// <summary>The gauges the alerts need: upstream readiness and token expiry, user budget use, usage backlog, Redis.</summary>
public sealed class OperatorGaugesTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private OperatorStateMetrics _metrics = null!;
    private PrometheusExporter _exporter = null!;
    private IDisposable _leader = null!;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _metrics = new OperatorStateMetrics(_f.Redis);
        _exporter = new PrometheusExporter(new PrometheusExporterOptions { IncludeProcessMetrics = false });
        // Resource gauges are reported by the leader only; a file-source operator always is one.
        _leader = OperatorMetrics.RegisterElector(static () => true);
    }

    public async Task DisposeAsync()
    {
        _leader.Dispose();
        _exporter.Dispose();
        _metrics.Dispose();
        await _f.DisposeAsync();
    }

    private TokenGateReconciler Reconciler() =>
        new(_f.DbFactory, _f.Projection, _f.Hasher, Options.Create(new OperatorOptions()), TimeProvider.System, NullLogger<TokenGateReconciler>.Instance, _metrics);

    private string[] Lines() => _exporter.Collect().Split('\n');

    private static UpstreamAccount Upstream(string name, UpstreamCredentials credentials, bool disabled = false) => new()
    {
        Metadata = new ObjectMeta { Name = name, Namespace = "default", Generation = 1 },
        Spec = new UpstreamAccountSpec
        {
            Provider = Providers.OpenAI,
            BaseUrl = "https://api.openai.com/v1",
            Credentials = credentials,
            Models = [new UpstreamModel { Name = "gpt-4o" }],
            Disabled = disabled,
        },
    };

    [Fact]
    public async Task Upstream_readiness_and_OAuth_token_expiry_are_exported_per_account()
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var expiry = new DateTimeOffset(2031, 5, 4, 3, 2, 1, TimeSpan.Zero);
        _f.WriteManifest("auth.yaml", $$"""
            apiVersion: v1
            kind: Secret
            metadata: { name: auth-{{id}}, namespace: default }
            stringData:
              auth.json: '{"type":"codex","access_token":"at-{{id}}","refresh_token":"rt","expired":"2031-05-04T03:02:01Z"}'
            """);
        Assert.Empty(_f.Source.Load().Errors);
        var reconciler = Reconciler();

        var (_, oauthStatus) = await reconciler.ReconcileUpstreamAsync(Upstream("oauth-" + id, new UpstreamCredentials
        {
            Oauth = new OAuthCredentials { SecretRef = new SecretReference { Name = "auth-" + id }, TokenUrl = "https://auth.example/token", ClientId = "c" },
        }), _f.Source, CancellationToken.None);
        await reconciler.ReconcileUpstreamAsync(Upstream("broken-" + id, new UpstreamCredentials { ApiKeySecretRef = new SecretKeySelector { Name = "missing", Key = "k" } }), _f.Source, CancellationToken.None);
        await reconciler.ReconcileUpstreamAsync(Upstream("off-" + id, new UpstreamCredentials
        {
            Oauth = new OAuthCredentials { SecretRef = new SecretReference { Name = "auth-" + id }, TokenUrl = "https://auth.example/token", ClientId = "c" },
        }, disabled: true), _f.Source, CancellationToken.None);

        Assert.Equal(expiry, oauthStatus.TokenExpiresAt);
        // The portal's admin overview reads the expiry and the last error from PostgreSQL (M0006).
        await using (var db = _f.Db())
        {
            var oauthRow = db.UpstreamAccounts.Single(a => a.Name == "oauth-" + id);
            Assert.Equal(expiry, oauthRow.TokenExpiresAt);
            Assert.Null(oauthRow.LastError);
            var brokenRow = db.UpstreamAccounts.Single(a => a.Name == "broken-" + id);
            Assert.Null(brokenRow.TokenExpiresAt);
            Assert.Contains("missing", brokenRow.LastError, StringComparison.Ordinal);
        }
        var lines = Lines();
        Assert.Contains($"tokengate_operator_upstream_ready{{upstream=\"default/oauth-{id}\"}} 1", lines);
        Assert.Contains($"tokengate_operator_upstream_ready{{upstream=\"default/broken-{id}\"}} 0", lines);
        Assert.DoesNotContain(lines, l => l.StartsWith("tokengate_operator_upstream_ready{upstream=\"default/off-" + id, StringComparison.Ordinal));
        Assert.Contains($"tokengate_operator_upstream_credentials_expiry_timestamp_seconds{{upstream=\"default/oauth-{id}\"}} {expiry.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)}", lines);
        Assert.DoesNotContain(lines, l => l.Contains("at-" + id, StringComparison.Ordinal));
        // The same expiry as seconds left (years here), next to the timestamp.
        var left = lines.Single(l => l.StartsWith($"tokengate_upstream_token_expiry_seconds{{upstream=\"default/oauth-{id}\"}} ", StringComparison.Ordinal));
        var seconds = double.Parse(left[(left.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
        Assert.InRange(seconds, (expiry - DateTimeOffset.UtcNow).TotalSeconds - 60, (expiry - DateTimeOffset.UtcNow).TotalSeconds + 1);

        await reconciler.DeleteUpstreamAsync("default", "oauth-" + id, CancellationToken.None);
        Assert.DoesNotContain(Lines(), l => l.Contains("default/oauth-" + id, StringComparison.Ordinal));
    }

    [Fact]
    public async Task User_budget_use_is_the_current_period_spend_over_the_budget()
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var reconciler = Reconciler();
        UserQuota User(string name, Budget? budget) => new()
        {
            Metadata = new ObjectMeta { Name = name, Namespace = "default", Generation = 1 },
            Spec = new UserQuotaSpec { User = new UserIdentity { Name = name, Email = name + "@example.com" }, Budget = budget },
        };
        await reconciler.ReconcileUserAsync(User("budget-" + id, new Budget { Amount = 20m, Period = BudgetPeriods.Monthly }), _f.Source, CancellationToken.None);
        await reconciler.ReconcileUserAsync(User("nobudget-" + id, null), _f.Source, CancellationToken.None);
        Guid userId;
        await using (var db = _f.Db()) userId = db.Users.Single(u => u.Name == "budget-" + id).Id;
        // The proxies count the period's spend (reservations included) under the period's key, in micro-dollars.
        var period = BudgetCalendar.CurrentPeriod(BudgetPeriods.Monthly, "UTC", DateTimeOffset.UtcNow)!.Value;
        await _f.Redis.ExecuteAsync("SET", [_f.Keys.BudgetSpent(userId.ToString(), period.Id), 15_000_000]);

        using var monitor = new UserBudgetMonitor(_f.DbFactory, _f.Redis, _f.Keys, _metrics, Options.Create(new OperatorOptions()), TimeProvider.System, NullLogger<UserBudgetMonitor>.Instance);
        await monitor.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(() => Task.FromResult(Lines().Contains($"tokengate_operator_user_budget_used_ratio{{user=\"default/budget-{id}\"}} 0.75")), "the budget gauge");
        Assert.DoesNotContain(Lines(), l => l.Contains("nobudget-" + id, StringComparison.Ordinal));
        await monitor.StopAsync(CancellationToken.None);
        Assert.DoesNotContain(Lines(), l => l.Contains("budget-" + id, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Usage_backlog_counts_unpersisted_events_and_the_age_of_the_oldest()
    {
        var old = DateTimeOffset.UtcNow.AddMinutes(-3).ToUnixTimeMilliseconds();
        await _f.Redis.ExecuteAsync("XADD", [_f.Keys.UsageStream(0), old.ToString(CultureInfo.InvariantCulture) + "-0", "request_id", "r1"]);
        await _f.Redis.ExecuteAsync("XADD", [_f.Keys.UsageStream(0), "*", "request_id", "r2"]);
        using var monitor = new UsageBacklogMonitor(_f.Redis, _f.Keys, Options.Create(new LedgerOptions { MetricsInterval = TimeSpan.FromMilliseconds(200) }), TimeProvider.System, NullLogger<UsageBacklogMonitor>.Instance);
        await monitor.StartAsync(CancellationToken.None);
        try
        {
            // Other monitors in this process report their own streams too: find this one's by value.
            await Eventually.TrueAsync(() => Task.FromResult(Lines().Any(l => l == "tokengate_ledger_backlog_events 2")), "the backlog gauge");
            var ages = Lines().Where(l => l.StartsWith("tokengate_ledger_oldest_event_age_seconds ", StringComparison.Ordinal))
                .Select(l => double.Parse(l.Split(' ')[1], CultureInfo.InvariantCulture)).ToList();
            Assert.Contains(ages, a => a is >= 170 and < 3600);

            await _f.Redis.ExecuteAsync("DEL", [_f.Keys.UsageStream(0)]);
            await Eventually.TrueAsync(() => Task.FromResult(!Lines().Any(l => l == "tokengate_ledger_backlog_events 2")), "the backlog to drain");
        }
        finally
        {
            await monitor.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Redis_connection_state_is_exported()
    {
        Assert.Contains("tokengate_operator_redis_up 1", Lines());
    }
}
