using System.Globalization;
using System.Net;
using System.Text;
using Gateway.Core.Usage;
using Gateway.Portal.Tests.Infrastructure;
using Gateway.Portal.Tests.Usage;
using Gateway.Portal.Usage;
using Npgsql;

namespace Gateway.Portal.Tests.Pages;

/// <summary>The dashboard, usage, detail, CSV and ledger pages through the real sign-in, against real PostgreSQL.</summary>
public sealed class UsagePagesTests : IAsyncLifetime
{
    private PortalHarness _h = null!;
    private SeededUser _alice = null!;
    private SeededUser _bob = null!;
    private NpgsqlDataSource _db = null!;
    private readonly Guid _aliceKey = Guid.NewGuid();
    private readonly Guid _bobKey = Guid.NewGuid();
    private readonly List<UsageEvent> _events = [];

    public async Task InitializeAsync()
    {
        _h = await PortalHarness.StartAsync();
        _alice = await _h.SeedEnrolledUserAsync("alice");
        _bob = await _h.SeedEnrolledUserAsync("bob");
        _db = NpgsqlDataSource.Create(_h.ConnectionString);
        await using (var cmd = _db.CreateCommand($$$"""
            UPDATE users SET spec = '{"budget":{"amount":20,"period":"monthly","timezone":"Europe/Berlin"},"limits":{"requestsPerDay":1000}}' WHERE id = '{{{_alice.Id}}}';
            INSERT INTO api_keys (id, namespace, name, user_id, key_prefix) VALUES
              ('{{{_aliceKey}}}', 'default', 'alice-ci', '{{{_alice.Id}}}', 'tg-alic'), ('{{{_bobKey}}}', 'default', 'bob-key', '{{{_bob.Id}}}', 'tg-bob0');
            INSERT INTO ledger_entries (user_id, kind, amount, grant_id, reason, created_at) VALUES
              ('{{{_alice.Id}}}', 'grant', 50, 'welcome', 'Welcome', now() - interval '20 days'),
              ('{{{_bob.Id}}}', 'grant', 5, 'welcome', NULL, now() - interval '20 days');
            INSERT INTO ledger_entries (user_id, kind, amount, reason, created_at) VALUES
              ('{{{_alice.Id}}}', 'adjust', -0.333, 'Correction', now() - interval '5 days');
            """))
        {
            await cmd.ExecuteNonQueryAsync();
        }
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 130; i++)
        {
            var mine = i % 10 != 0;
            var status = i % 13 == 0 ? 429 : 200;
            _events.Add(new UsageEvent
            {
                RequestId = "page-req-" + i.ToString("D4", CultureInfo.InvariantCulture),
                KeyId = (mine ? _aliceKey : _bobKey).ToString(),
                UserId = (mine ? _alice.Id : _bob.Id).ToString(),
                KeyVersion = 1,
                Upstream = i % 3 == 0 ? "default/anthropic" : "default/openai",
                Model = i % 3 == 0 ? "claude-sonnet-4" : "gpt-4o-mini",
                Route = "/v1/chat/completions",
                Tokens = new TokenCounts(100 + i, i % 4 * 10, 0, 50 + i),
                Cost = 0.0012345m * (i + 1),
                PriceVersion = "2026-11-01",
                StartedAt = now.AddHours(-i * 3),
                DurationMs = 200 + i,
                TimeToFirstByteMs = 40 + i,
                Status = status,
                Streamed = i % 2 == 0,
                ClientIp = "203.0.113." + (i % 200).ToString(CultureInfo.InvariantCulture),
                ErrorCode = status == 429 ? "rate_limit_exceeded" : "",
            });
        }
        await UsageLedgerBatch.WriteAsync(_db, _events);
    }

    public async Task DisposeAsync()
    {
        await _db.DisposeAsync();
        await _h.DisposeAsync();
    }

    private async Task<decimal> LedgerSumAsync(Guid user)
    {
        await using var cmd = _db.CreateCommand($"SELECT sum(amount) FROM ledger_entries WHERE user_id = '{user}'");
        return (decimal)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task Dashboard_balance_equals_the_ledger_pages_last_balance_and_the_ledger_to_the_cent()
    {
        using var client = await _h.SignInAsync(_alice);
        var dashboard = await client.GetPageAsync("/");
        var ledger = await client.GetPageAsync("/ledger");
        var expected = DisplayFormat.Usd(await LedgerSumAsync(_alice.Id));
        Assert.Equal(expected, PortalClient.ElementText(dashboard, "balance"));
        Assert.Equal(expected, PortalClient.ElementText(ledger, "ledger-balance"));
        // The newest line of the ledger table carries the same balance.
        var table = ledger[ledger.IndexOf("<tbody>", StringComparison.Ordinal)..];
        var firstRow = table[..table.IndexOf("</tr>", StringComparison.Ordinal)];
        Assert.EndsWith(expected, WebUtility.HtmlDecode(System.Text.RegularExpressions.Regex.Replace(firstRow, "<[^>]+>", " ")).Trim(), StringComparison.Ordinal);
        Assert.Contains("<svg", dashboard, StringComparison.Ordinal);
        Assert.Contains("alice-ci", dashboard, StringComparison.Ordinal);
        Assert.DoesNotContain("bob-key", dashboard, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_page_filters_totals_and_pages_only_the_users_own_rows()
    {
        using var client = await _h.SignInAsync(_alice);
        var mine = _events.Where(e => e.UserId == _alice.Id.ToString()).ToList();
        var html = await client.GetPageAsync("/usage");
        Assert.Equal(DisplayFormat.Count(mine.Count), PortalClient.ElementText(html, "total-requests"));
        Assert.DoesNotContain("bob-key", html, StringComparison.Ordinal);
        // The newest page holds the 50 newest of Alice's requests; "Older" leads to the rest.
        var ids = new List<string>();
        var path = "/usage";
        for (var guard = 0; guard < 10; guard++)
        {
            html = await client.GetPageAsync(path);
            ids.AddRange(System.Text.RegularExpressions.Regex.Matches(html, "href=\"/usage/(page-req-\\d+)\"").Select(m => m.Groups[1].Value));
            var older = System.Text.RegularExpressions.Regex.Match(html, "id=\"older\" href=\"([^\"]+)\"");
            if (!older.Success) break;
            path = WebUtility.HtmlDecode(older.Groups[1].Value);
        }
        Assert.Equal(mine.OrderByDescending(e => e.StartedAt).Select(e => e.RequestId), ids);

        var failed = await client.GetPageAsync("/usage?status=error");
        Assert.Equal(DisplayFormat.Count(mine.Count(e => e.Status != 200)), PortalClient.ElementText(failed, "total-requests"));
        Assert.Contains("rate_limit_exceeded", failed, StringComparison.Ordinal);
        Assert.DoesNotContain("status-ok", failed, StringComparison.Ordinal);
        var byModel = await client.GetPageAsync("/usage?model=claude-sonnet-4&streamed=yes");
        var expected = mine.Where(e => e.Model == "claude-sonnet-4" && e.Streamed).ToList();
        Assert.Equal(DisplayFormat.Count(expected.Count), PortalClient.ElementText(byModel, "total-requests"));
        Assert.Equal(DisplayFormat.UsdPrecise(expected.Sum(e => e.Cost)), PortalClient.ElementText(byModel, "total-cost"));
    }

    [Fact]
    public async Task Detail_shows_the_request_to_its_owner_and_is_404_for_anyone_else()
    {
        var e = _events.First(x => x.UserId == _alice.Id.ToString() && x.Status == 429);
        using var alice = await _h.SignInAsync(_alice);
        var html = await alice.GetPageAsync("/usage/" + e.RequestId);
        Assert.Equal(e.ClientIp, PortalClient.ElementText(html, "client-ip"));
        Assert.Equal("rate_limit_exceeded", PortalClient.ElementText(html, "error-code"));
        Assert.Equal(e.Upstream, PortalClient.ElementText(html, "upstream"));
        Assert.Equal(DisplayFormat.UsdPrecise(e.Cost), PortalClient.ElementText(html, "cost"));
        Assert.Equal("2026-11-01", PortalClient.ElementText(html, "price-version"));

        using var bob = await _h.SignInAsync(_bob);
        using var response = await bob.GetAsync("/usage/" + e.RequestId);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var unknown = await bob.GetAsync("/usage/no-such-request");
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
    }

    [Fact]
    public async Task Csv_export_streams_the_filtered_rows_and_needs_a_signed_in_user()
    {
        using var client = await _h.SignInAsync(_alice);
        using var response = await client.GetAsync("/usage/export.csv?status=ok&model=gpt-4o-mini");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/csv", response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("attachment", response.Content.Headers.ContentDisposition!.ToString(), StringComparison.Ordinal);
        var rows = UsageCsvExportTests.ParseCsv(Encoding.UTF8.GetString(await response.Content.ReadAsByteArrayAsync()));
        var expected = _events.Where(e => e.UserId == _alice.Id.ToString() && e.Status == 200 && e.Model == "gpt-4o-mini")
            .OrderByDescending(e => e.StartedAt).ToList();
        Assert.Equal(UsageCsvExport.Header, rows[0]);
        Assert.Equal(expected.Select(e => e.RequestId), rows.Skip(1).Select(r => r[0]));
        Assert.Equal(expected.Select(e => e.Cost), rows.Skip(1).Select(r => decimal.Parse(r[14], CultureInfo.InvariantCulture)));
        Assert.Equal(expected.Select(e => e.ClientIp), rows.Skip(1).Select(r => r[18]));

        using var anonymous = _h.CreateClient();
        using var refused = await anonymous.GetAsync("/usage/export.csv");
        Assert.NotEqual(HttpStatusCode.OK, refused.StatusCode);
    }

    [Fact]
    public async Task Pages_speak_chinese_when_asked()
    {
        using var client = await _h.SignInAsync(_alice);
        foreach (var (path, text) in new[] { ("/", "余额"), ("/usage", "下载 CSV"), ("/ledger", "账本"), ("/usage/" + _events[1].RequestId, "首字节时间") })
        {
            using var r = new HttpRequestMessage(HttpMethod.Get, path);
            r.Headers.AcceptLanguage.ParseAdd("zh-CN");
            using var response = await client.Http.SendAsync(r);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Contains(text, WebUtility.HtmlDecode(await response.Content.ReadAsStringAsync()), StringComparison.Ordinal);
        }
    }
}
