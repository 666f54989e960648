using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Tests.Admin;

/// <summary>The read-only admin overview: figures from the ledger and usage_log, kubectl commands, admins only.</summary>
public sealed class AdminPageTests : IAsyncLifetime
{
    private static readonly string[] AdminPages = ["/admin", "/admin/upstreams", "/admin/spend", "/admin/failures"];
    private PortalHarness _h = null!;

    public async Task InitializeAsync() => _h = await PortalHarness.StartAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private async Task SetBudgetAsync(Guid userId, decimal amount, string period, bool suspended = false)
    {
        var spec = new UserQuotaSpec { Budget = new Budget { Amount = amount, Period = period, Timezone = "UTC" }, Suspended = suspended };
        await using var db = _h.CreateDbContext();
        await db.Users.Where(u => u.Id == userId).ExecuteUpdateAsync(u => u
            .SetProperty(x => x.Spec, JsonSerializer.Serialize(spec, TokenGateJson.Options))
            .SetProperty(x => x.Suspended, suspended));
    }

    private async Task LedgerAsync(Guid userId, string kind, decimal amount, DateTimeOffset at)
    {
        await using var db = _h.CreateDbContext();
        db.LedgerEntries.Add(new LedgerEntryRow
        {
            UserId = userId, Kind = kind, Amount = amount, CreatedAt = at,
            GrantId = kind == LedgerKinds.Grant ? "g-" + Guid.NewGuid().ToString("N") : null,
            RequestId = kind == LedgerKinds.Consume ? "r-" + Guid.NewGuid().ToString("N") : null,
        });
        await db.SaveChangesAsync();
    }

    private async Task UsageAsync(Guid? userId, string model, string upstream, int status, decimal cost, long tokens, DateTimeOffset at, string requestId)
    {
        await using var db = _h.CreateDbContext();
        db.UsageLog.Add(new UsageLogRow
        {
            RequestId = requestId, UserId = userId, Model = model, Upstream = upstream, Route = "/v1/chat/completions",
            InputTokens = tokens, Cost = cost, StartedAt = at, CreatedAt = at, Status = status, DurationMs = 12,
        });
        await db.SaveChangesAsync();
    }

    /// <summary>Builds the daily roll-ups from the seeded rows, as the ledger writer would have kept them.</summary>
    private async Task RollUpAsync()
    {
        await using var db = _h.CreateDbContext();
        await db.Database.ExecuteSqlRawAsync(Escape(Gateway.Core.Storage.Migrations.M0003_UsageDetail.BackfillSql));
        await db.Database.ExecuteSqlRawAsync(Escape(Gateway.Core.Storage.Migrations.M0006_AdminRollups.BackfillSql));
    }

    private static string Escape(string sql) => sql.Replace("{", "{{", StringComparison.Ordinal).Replace("}", "}}", StringComparison.Ordinal);

    private static string Attr(string html, string rowAttr, string rowValue, string attr)
    {
        var start = html.IndexOf(rowAttr + "=\"" + rowValue + "\"", StringComparison.Ordinal);
        Assert.True(start >= 0, $"No row {rowAttr}={rowValue}.");
        var row = html[start..html.IndexOf("</tr>", start, StringComparison.Ordinal)];
        var m = Regex.Match(row, attr + "=\"([^\"]*)\"");
        Assert.True(m.Success, $"Row {rowValue} has no {attr}.");
        return m.Groups[1].Value;
    }

    [Fact]
    public async Task Non_admins_get_403_on_every_admin_page_and_no_admin_link()
    {
        var user = await _h.SeedEnrolledUserAsync("plain");
        using var client = await _h.SignInAsync(user);
        foreach (var page in AdminPages.Append("/admin/users/" + user.Id))
        {
            using var r = await client.GetAsync(page);
            Assert.True(r.StatusCode == HttpStatusCode.Forbidden, $"{page} answered {(int)r.StatusCode} to a non-admin.");
        }
        Assert.DoesNotContain("href=\"/admin\"", await client.GetPageAsync("/security"), StringComparison.Ordinal);
        using var anonymous = _h.CreateClient();
        using var anon = await anonymous.GetAsync("/admin");
        Assert.Equal(HttpStatusCode.Redirect, anon.StatusCode);
    }

    [Fact]
    public async Task Users_page_shows_balance_spend_this_period_budget_and_state()
    {
        var admin = await _h.SeedEnrolledUserAsync("root", admin: true);
        var alice = await _h.SeedEnrolledUserAsync("alice");
        var bob = await _h.SeedEnrolledUserAsync("bob");
        var invited = await _h.SeedInvitedUserAsync("carol");
        var now = _h.Time.GetUtcNow();
        var period = BudgetCalendar.CurrentPeriod(BudgetPeriods.Monthly, "UTC", now)!.Value;
        await SetBudgetAsync(alice.Id, 50m, BudgetPeriods.Monthly);
        await SetBudgetAsync(bob.Id, 5m, BudgetPeriods.Daily, suspended: true);
        await LedgerAsync(alice.Id, LedgerKinds.Grant, 100m, period.Start.AddDays(-20));
        await LedgerAsync(alice.Id, LedgerKinds.Consume, -7.25m, period.Start.AddDays(-1));     // last period
        await LedgerAsync(alice.Id, LedgerKinds.Consume, -1.50m, period.Start.AddMinutes(1));
        // "Recent" stays inside this period even in its first minutes.
        var recent = now.AddMinutes(-1) > period.Start.AddMinutes(2) ? now.AddMinutes(-1) : period.Start.AddMinutes(2);
        await LedgerAsync(alice.Id, LedgerKinds.Consume, -0.125m, recent);
        await LedgerAsync(alice.Id, LedgerKinds.Refund, 0.5m, recent);
        await LedgerAsync(bob.Id, LedgerKinds.Grant, 3m, now.AddDays(-2));
        var today = BudgetCalendar.CurrentPeriod(BudgetPeriods.Daily, "UTC", now)!.Value;
        await LedgerAsync(bob.Id, LedgerKinds.Expire, -0.5m, today.Start);                       // this (daily) period
        await LedgerAsync(bob.Id, LedgerKinds.Expire, -0.25m, today.Start.AddSeconds(-1));       // the day before
        await RollUpAsync();

        using var client = await _h.SignInAsync(admin);
        var html = await client.GetPageAsync("/admin");
        Assert.Equal(100m - 7.25m - 1.5m - 0.125m + 0.5m, decimal.Parse(Attr(html, "data-user", "alice", "data-balance"), CultureInfo.InvariantCulture));
        Assert.Equal(1.625m, decimal.Parse(Attr(html, "data-user", "alice", "data-spent"), CultureInfo.InvariantCulture));
        Assert.Equal("enrolled", Attr(html, "data-user", "alice", "data-state"));
        Assert.Equal(2.25m, decimal.Parse(Attr(html, "data-user", "bob", "data-balance"), CultureInfo.InvariantCulture));
        Assert.Equal(0.5m, decimal.Parse(Attr(html, "data-user", "bob", "data-spent"), CultureInfo.InvariantCulture));
        Assert.Equal("suspended", Attr(html, "data-user", "bob", "data-state"));
        Assert.Equal("invited", Attr(html, "data-user", "carol", "data-state"));
        var table = PortalClient.ElementText(html, "admin-users")!;
        Assert.Contains("$50.00 / monthly", table, StringComparison.Ordinal);
        Assert.Contains("$91.63", table, StringComparison.Ordinal);
        Assert.Contains("4 users.", html, StringComparison.Ordinal);
        _ = invited;
    }

    [Fact]
    public async Task Users_page_paginates()
    {
        var admin = await _h.SeedEnrolledUserAsync("aaa-admin", admin: true);
        await using (var db = _h.CreateDbContext())
        {
            await db.Database.ExecuteSqlRawAsync("""
                INSERT INTO users (id, namespace, name, login, email, enrollment, spec, created_at, updated_at)
                SELECT gen_random_uuid(), 'team', 'u' || lpad(i::text, 3, '0'), 'u' || i, 'u' || i || '@example.test', 'Invited', '{{}}', now(), now()
                FROM generate_series(1, 120) AS i
                """);
        }
        using var client = await _h.SignInAsync(admin);
        var p1 = await client.GetPageAsync("/admin");
        var p3 = await client.GetPageAsync("/admin?p=3");
        Assert.Contains("data-user=\"u001\"", p1, StringComparison.Ordinal);
        Assert.Contains("rel=\"next\"", p1, StringComparison.Ordinal);
        Assert.DoesNotContain("data-user=\"u001\"", p3, StringComparison.Ordinal);
        Assert.Contains("data-user=\"u120\"", p3, StringComparison.Ordinal);
        Assert.DoesNotContain("rel=\"next\"", p3, StringComparison.Ordinal);
        Assert.Contains("121 users.", p1, StringComparison.Ordinal);
    }

    [Fact]
    public async Task User_page_renders_the_kubectl_commands_with_the_right_names()
    {
        var admin = await _h.SeedEnrolledUserAsync("root", admin: true);
        var dora = await _h.SeedEnrolledUserAsync("dora", @namespace: "team-a");
        await using (var db = _h.CreateDbContext())
        {
            var now = DateTimeOffset.UtcNow;
            db.ApiKeys.Add(new ApiKeyRow { Id = Guid.NewGuid(), Namespace = "team-a", Name = "dora-ci", UserId = dora.Id, KeyPrefix = "tg-abc", CreatedAt = now, UpdatedAt = now });
            await db.SaveChangesAsync();
        }
        using var client = await _h.SignInAsync(admin);
        var html = WebUtility.HtmlDecode(await client.GetPageAsync("/admin/users/" + dora.Id));
        Assert.Matches(
            """kubectl patch uq dora -n team-a --type=json -p '\[\{"op":"add","path":"/spec/grants/-","value":\{"id":"grant-\d{8}-[0-9a-f]{6}","amount":10,"reason":"Top-up"\}\}\]'""",
            html);
        Assert.Contains("""kubectl patch uq dora -n team-a --type=merge -p '{"spec":{"suspended":true}}'""", html, StringComparison.Ordinal);
        Assert.Contains("kubectl annotate ak dora-ci -n team-a tokengate.io/rotate=$(date +%s) --overwrite", html, StringComparison.Ordinal);
        Assert.Equal(TokenGateApi.RotateAnnotation, "tokengate.io/rotate");

        await SetBudgetAsync(dora.Id, 1m, BudgetPeriods.None, suspended: true);
        var suspended = WebUtility.HtmlDecode(await client.GetPageAsync("/admin/users/" + dora.Id));
        Assert.Contains("""kubectl patch uq dora -n team-a --type=merge -p '{"spec":{"suspended":false}}'""", suspended, StringComparison.Ordinal);
        using var missing = await client.GetAsync("/admin/users/" + Guid.NewGuid());
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Upstreams_spend_and_failures_pages_show_the_usage_figures()
    {
        var admin = await _h.SeedEnrolledUserAsync("root", admin: true);
        var erik = await _h.SeedEnrolledUserAsync("erik");
        var now = _h.Time.GetUtcNow();
        await using (var db = _h.CreateDbContext())
        {
            var t = DateTimeOffset.UtcNow;
            db.UpstreamAccounts.Add(new UpstreamAccountRow
            {
                Id = Guid.NewGuid(), Namespace = "gw", Name = "openai-a", Provider = "openai", BaseUrl = "http://a", CreatedAt = t, UpdatedAt = t,
                Spec = """{"credentials":{"oauth":{"secretRef":{"name":"a"},"tokenUrl":"http://t","clientId":"c","refreshBefore":"10m"}}}""",
                TokenExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(now.AddMinutes(30).ToUnixTimeMilliseconds()), LastError = "token endpoint said invalid_grant",
            });
            db.UpstreamAccounts.Add(new UpstreamAccountRow { Id = Guid.NewGuid(), Namespace = "gw", Name = "openai-b", Provider = "openai", BaseUrl = "http://b", CreatedAt = t, UpdatedAt = t });
            await db.SaveChangesAsync();
        }
        await UsageAsync(erik.Id, "gpt-a", "gw/openai-a", 200, 1.25m, 100, now.AddMinutes(-10), "ok-1");
        await UsageAsync(erik.Id, "gpt-a", "gw/openai-a", 200, 0.75m, 50, now.AddMinutes(-9), "ok-2");
        await UsageAsync(erik.Id, "gpt-a", "gw/openai-a", 502, 0m, 0, now.AddMinutes(-8), "fail-502");
        await UsageAsync(erik.Id, "gpt-b", "gw/openai-a", 429, 0m, 0, now.AddMinutes(-7), "fail-429");
        await UsageAsync(null, "gpt-b", "gw/openai-b", 401, 0m, 0, now.AddMinutes(-6), "fail-401");
        await UsageAsync(erik.Id, "gpt-b", "gw/openai-b", 200, 2m, 10, now.AddDays(-2), "ok-old");
        await UsageAsync(erik.Id, "gpt-b", "gw/openai-b", 200, 99m, 10, now.AddDays(-45), "ok-too-old");
        await RollUpAsync();

        // A cooldown the proxies share in Redis (an upstream 429 with Retry-After), in the portal's Redis prefix.
        var cooldownUntil = DateTimeOffset.FromUnixTimeMilliseconds(now.AddMinutes(5).ToUnixTimeMilliseconds());
        await using (var redis = await Gateway.Core.Redis.RespClient.ConnectAsync(Gateway.Testing.TestEnvironment.Redis))
        {
            var key = new Gateway.Core.Projection.ProjectionKeys(_h.RedisPrefix).UpstreamCooldown("gw/openai-a");
            await redis.ExecuteAsync("SET", [key, cooldownUntil.ToUnixTimeMilliseconds(), "EX", 600]);
        }

        using var client = await _h.SignInAsync(admin);
        var up = await client.GetPageAsync("/admin/upstreams");
        Assert.Equal(cooldownUntil.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), Attr(up, "data-account", "gw/openai-a", "data-cooldown"));
        Assert.Equal("none", Attr(up, "data-account", "gw/openai-b", "data-cooldown"));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(now.AddMinutes(30).ToUnixTimeMilliseconds()).UtcDateTime.ToString("O", CultureInfo.InvariantCulture), Attr(up, "data-account", "gw/openai-a", "data-token-expiry"));
        Assert.Equal("expiring", Attr(up, "data-account", "gw/openai-a", "data-token-state"));
        Assert.Equal("n/a", Attr(up, "data-account", "gw/openai-b", "data-token-expiry"));
        Assert.Contains("token endpoint said invalid_grant", up, StringComparison.Ordinal);
        Assert.Contains("refreshed 10m before expiry", up, StringComparison.Ordinal);
        Assert.Equal("0.5", Attr(up, "data-account", "gw/openai-a", "data-error-rate"));
        Assert.Equal("failing", Attr(up, "data-account", "gw/openai-a", "data-health"));   // half of the last hour failed
        Assert.Equal("healthy", Attr(up, "data-account", "gw/openai-b", "data-health"));
        Assert.Equal("0", Attr(up, "data-account", "gw/openai-b", "data-error-rate"));   // a 401 is the client's fault
        // The harness gives the portal Redis (its own prefix), where no proxy counted anything this minute.
        Assert.Equal("0", Attr(up, "data-account", "gw/openai-a", "data-live"));

        var spend = await client.GetPageAsync("/admin/spend");
        Assert.Equal(2m, decimal.Parse(Attr(spend, "data-key", "gpt-a", "data-spend"), CultureInfo.InvariantCulture));
        Assert.Equal("150", Attr(spend, "data-key", "gpt-a", "data-tokens"));
        Assert.Equal(2m, decimal.Parse(Attr(spend, "data-key", "gpt-b", "data-spend"), CultureInfo.InvariantCulture));
        Assert.Equal(4m, decimal.Parse(Attr(spend, "data-key", "default/erik", "data-spend"), CultureInfo.InvariantCulture));

        // Today's roll-ups keep growing as the ledger writer persists usage: the page shows it once the snapshot's
        // refresh interval has passed.
        await using (var dataSource = Npgsql.NpgsqlDataSource.Create(_h.ConnectionString))
        {
            Assert.Equal(1, await Gateway.Core.Usage.UsageLedgerBatch.WriteAsync(dataSource, [new Gateway.Core.Usage.UsageEvent
            {
                RequestId = "new-1", KeyId = "", UserId = erik.Id.ToString(), Model = "gpt-new", Upstream = "gw/openai-a",
                Route = "/v1/chat/completions", Tokens = new Gateway.Core.Usage.TokenCounts(7, 0, 0, 0), Cost = 5.5m,
                PriceVersion = "test", StartedAt = now, Status = 200,
            }]));
        }
        Assert.DoesNotContain("data-key=\"gpt-new\"", await client.GetPageAsync("/admin/spend"), StringComparison.Ordinal);
        _h.Time.Advance(Gateway.Portal.Admin.SpendSnapshot.RefreshInterval + TimeSpan.FromSeconds(1));
        var refreshed = await client.GetPageAsync("/admin/spend");
        Assert.Equal(5.5m, decimal.Parse(Attr(refreshed, "data-key", "gpt-new", "data-spend"), CultureInfo.InvariantCulture));
        Assert.Equal(9.5m, decimal.Parse(Attr(refreshed, "data-key", "default/erik", "data-spend"), CultureInfo.InvariantCulture));

        var failures = await client.GetPageAsync("/admin/failures");
        var table = PortalClient.ElementText(failures, "admin-failures")!;
        Assert.DoesNotContain("ok-1", table, StringComparison.Ordinal);
        var order = new[] { "fail-401", "fail-429", "fail-502" }.Select(id => failures.IndexOf("data-request=\"" + id + "\"", StringComparison.Ordinal)).ToList();
        Assert.All(order, i => Assert.True(i > 0));
        Assert.True(order[0] < order[1] && order[1] < order[2], "Failed requests are not newest first.");
    }
}
