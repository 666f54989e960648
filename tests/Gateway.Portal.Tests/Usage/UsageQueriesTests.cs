using Gateway.Core.Usage;
using Gateway.Portal.Usage;

namespace Gateway.Portal.Tests.Usage;

public sealed class UsageQueriesTests(UsageDataFixture f) : IClassFixture<UsageDataFixture>
{
    private UsageQueries Queries => new(f.DataSource);

    private static bool Matches(UsageEvent e, Guid user, UsageFilter filter)
    {
        if (e.UserId != user.ToString()) return false;
        var day = DateOnly.FromDateTime(e.StartedAt.UtcDateTime);
        if (filter.From is { } from && day < from) return false;
        if (filter.To is { } to && day > to) return false;
        if (filter.KeyId is { } k && e.KeyId != k.ToString()) return false;
        if (filter.Model is { } m && e.Model != m) return false;
        if (filter.Streamed is { } s && e.Streamed != s) return false;
        var failed = e.Status is < 200 or > 399;
        if (filter.Status == UsageStatusFilter.Ok && failed) return false;
        if (filter.Status == UsageStatusFilter.Error && !failed) return false;
        return true;
    }

    public static TheoryData<string> Filters => ["none", "model", "key+error", "streamed+ok", "dates", "dates+model+streamed", "empty"];

    private UsageFilter FilterNamed(string name)
    {
        var today = DateOnly.FromDateTime(f.Now.UtcDateTime);
        return name switch
        {
            "model" => new UsageFilter { Model = "gpt-4o" },
            "key+error" => new UsageFilter { KeyId = f.AliceKey1, Status = UsageStatusFilter.Error },
            "streamed+ok" => new UsageFilter { Streamed = true, Status = UsageStatusFilter.Ok },
            "dates" => new UsageFilter { From = today.AddDays(-20), To = today.AddDays(-5) },
            "dates+model+streamed" => new UsageFilter { From = today.AddDays(-30), To = today, Model = "odd,\"model\"", Streamed = false },
            "empty" => new UsageFilter { Model = "no-such-model" },
            _ => new UsageFilter(),
        };
    }

    [Theory]
    [MemberData(nameof(Filters))]
    public async Task Pages_walk_every_matching_row_newest_first_both_ways_and_totals_match(string name)
    {
        var filter = FilterNamed(name);
        var expected = f.Events.Where(e => Matches(e, f.Alice, filter)).ToList();

        // Forward through the older pages.
        var seen = new List<UsageRow>();
        var page = await Queries.PageAsync(f.Alice, filter, null, null, pageSize: 37);
        Assert.Null(page.Newer);
        var pages = new List<UsagePage> { page };
        seen.AddRange(page.Rows);
        while (page.Older is { } older)
        {
            page = await Queries.PageAsync(f.Alice, filter, older, null, pageSize: 37);
            pages.Add(page);
            seen.AddRange(page.Rows);
            Assert.True(pages.Count < 100, "pagination does not end");
        }
        Assert.Equal(expected.Select(e => e.RequestId).Order(), seen.Select(r => r.RequestId).Order());
        Assert.Equal(seen.Count, seen.Select(r => r.RequestId).Distinct().Count());
        for (var i = 1; i < seen.Count; i++)
        {
            Assert.True(seen[i - 1].StartedAt > seen[i].StartedAt || (seen[i - 1].StartedAt == seen[i].StartedAt && seen[i - 1].Id > seen[i].Id), "newest first");
        }
        // And back: each "newer" link gives the page that was before it.
        for (var i = pages.Count - 1; i > 0; i--)
        {
            var back = await Queries.PageAsync(f.Alice, filter, null, pages[i].Newer, pageSize: 37);
            Assert.Equal(pages[i - 1].Rows.Select(r => r.RequestId), back.Rows.Select(r => r.RequestId));
        }

        var totals = await Queries.TotalsAsync(f.Alice, filter);
        Assert.Equal(expected.Count, totals.Requests);
        Assert.Equal(expected.Count(e => e.Status is < 200 or > 399), totals.Errors);
        Assert.Equal(expected.Sum(e => e.Tokens.Input), totals.InputTokens);
        Assert.Equal(expected.Sum(e => e.Tokens.CachedInput), totals.CachedInputTokens);
        Assert.Equal(expected.Sum(e => e.Tokens.CacheWrite), totals.CacheWriteTokens);
        Assert.Equal(expected.Sum(e => e.Tokens.Output), totals.OutputTokens);
        Assert.Equal(expected.Sum(e => e.Cost), totals.Cost);
        if (name != "empty") Assert.NotEmpty(expected);
    }

    [Fact]
    public async Task Rows_never_include_another_users_requests()
    {
        var bobIds = f.Events.Where(e => e.UserId == f.Bob.ToString()).Select(e => e.RequestId).ToHashSet();
        var page = await Queries.PageAsync(f.Alice, new UsageFilter { KeyId = f.BobKey }, null, null, pageSize: 500);
        Assert.Empty(page.Rows);
        Assert.Equal(0, (await Queries.TotalsAsync(f.Alice, new UsageFilter { KeyId = f.BobKey })).Requests);
        var all = await Queries.PageAsync(f.Alice, new UsageFilter(), null, null, pageSize: 500);
        Assert.DoesNotContain(all.Rows, r => bobIds.Contains(r.RequestId));
    }

    [Fact]
    public async Task Detail_shows_everything_recorded_and_only_to_its_owner()
    {
        var e = f.Events.First(x => x.UserId == f.Alice.ToString() && x.Status == 429 && x.ClientIp.Length > 0 && x.TimeToFirstByteMs is not null);
        var d = await Queries.DetailAsync(f.Alice, e.RequestId);
        Assert.NotNull(d);
        Assert.Equal((e.Tokens.Input, e.Tokens.CachedInput, e.Tokens.CacheWrite, e.Tokens.Output), (d.InputTokens, d.CachedInputTokens, d.CacheWriteTokens, d.OutputTokens));
        Assert.Equal(e.Cost, d.Cost);
        Assert.Equal((e.PriceVersion, e.Upstream, e.Model, e.Route), (d.PriceVersion, d.Upstream, d.Model, d.Route));
        Assert.Equal((e.TimeToFirstByteMs, e.DurationMs), (d.TimeToFirstByteMs, d.DurationMs));
        Assert.Equal(("rate_limit_exceeded", e.ClientIp), (d.ErrorCode, d.ClientIp));
        Assert.Equal(e.KeyId, d.ApiKeyId.ToString());
        Assert.NotNull(d.KeyName);

        Assert.Null(await Queries.DetailAsync(f.Bob, e.RequestId));
        Assert.Null(await Queries.DetailAsync(f.Alice, "no-such-request"));
    }

    [Fact]
    public async Task Filter_choices_list_own_keys_and_used_models()
    {
        var (keys, models) = await Queries.FilterChoicesAsync(f.Alice);
        Assert.Equal(["alice-ci", "alice-laptop"], keys.Select(k => k.Name));
        Assert.Equal(UsageDataFixture.Models.Order(StringComparer.Ordinal), models.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("2026-12-01", "2026-12-31", "00000000-0000-0000-0000-000000000001", "gpt-4o", "error", "yes")]
    [InlineData("junk", "", "not-a-guid", " ", "maybe", "")]
    public void Filter_round_trips_through_the_query_string(string from, string to, string key, string model, string status, string streamed)
    {
        var filter = UsageFilter.Parse(from, to, key, model, status, streamed);
        var q = filter.ToQuery();
        Assert.Equal(filter, UsageFilter.Parse(q["from"], q["to"], q["key"], q["model"], q["status"], q["streamed"]));
    }

    [Fact]
    public void Cursor_round_trips_and_rejects_garbage()
    {
        var c = new UsageCursor(new DateTimeOffset(2026, 12, 7, 1, 2, 3, TimeSpan.Zero).AddTicks(4560), 42);
        Assert.Equal(c, UsageCursor.Parse(c.ToString()));
        Assert.Null(UsageCursor.Parse("x-1"));
        Assert.Null(UsageCursor.Parse("-5"));
        Assert.Null(UsageCursor.Parse("99999999999999999999-1"));
    }
}
