using Gateway.Core.Enforcement;
using Gateway.Portal.Usage;

namespace Gateway.Portal.Tests.Usage;

public sealed class LedgerAndDashboardTests(UsageDataFixture f) : IClassFixture<UsageDataFixture>
{
    [Fact]
    public async Task Ledger_running_balance_ends_at_the_dashboard_balance_to_the_cent()
    {
        var history = await new LedgerQueries(f.DataSource).HistoryAsync(f.Alice);
        var dashboard = await new DashboardQueries(f.DataSource).LoadAsync(f.Alice, f.Now);
        var recorded = await f.ScalarAsync<decimal>($"SELECT sum(amount) FROM ledger_entries WHERE user_id = '{f.Alice}'");

        Assert.NotNull(dashboard);
        Assert.Equal(recorded, history[^1].Balance);
        Assert.Equal(recorded, dashboard.Balance);
        Assert.Equal(Math.Round(dashboard.Balance, 2), Math.Round(history[^1].Balance, 2));
        // Each line's balance is the previous one plus its amount.
        for (var i = 1; i < history.Count; i++) Assert.Equal(history[i - 1].Balance + history[i].Amount, history[i].Balance);
        Assert.Equal(history[0].Amount, history[0].Balance);
        // Consumption is one line per UTC day, summing that day's requests; the other kinds are one line each.
        var consumes = history.Where(l => l.Kind == "consume").ToList();
        Assert.Equal(consumes.Count, consumes.Select(l => l.Day).Distinct().Count());
        var charged = f.Events.Where(e => e.UserId == f.Alice.ToString() && e.Cost > 0).ToList();
        Assert.Equal(charged.Count, consumes.Sum(l => l.Entries));
        Assert.Equal(-charged.Sum(e => e.Cost), consumes.Sum(l => l.Amount));
        Assert.Equal(["adjust", "expire", "grant", "grant", "refund"], history.Where(l => l.Kind != "consume").Select(l => l.Kind).Order());
        // Oldest first.
        for (var i = 1; i < history.Count; i++) Assert.True(history[i - 1].At <= history[i].At);
    }

    [Fact]
    public async Task Dashboard_reads_budget_period_limits_series_breakdowns_and_keys()
    {
        var d = await new DashboardQueries(f.DataSource).LoadAsync(f.Alice, f.Now);
        Assert.NotNull(d);
        var period = BudgetCalendar.CurrentPeriod("monthly", "America/New_York", f.Now)!.Value;
        Assert.Equal(period, d.Period);
        Assert.Equal(25m, d.Budget!.Amount);
        // The operator's definition: consume and expire entries since the period began.
        var spent = -await f.ScalarAsync<decimal>($"""
            SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = '{f.Alice}' AND kind IN ('consume', 'expire')
              AND created_at >= '{period.Start.UtcDateTime:O}'
            """);
        Assert.Equal(spent, d.SpentThisPeriod);
        Assert.Equal(25m - spent, d.BudgetRemaining);
        Assert.Equal(5000, d.Limits!.RequestsPerDay);

        var alice = f.Events.Where(e => e.UserId == f.Alice.ToString()).ToList();
        var today = DateOnly.FromDateTime(f.Now.UtcDateTime);
        var recent = alice.Where(e => DateOnly.FromDateTime(e.StartedAt.UtcDateTime) > today.AddDays(-DashboardQueries.Days)).ToList();
        Assert.Equal(DashboardQueries.Days, d.Days.Count);
        Assert.Equal(today, d.Days[^1].Day);
        Assert.Equal(recent.Sum(e => e.Cost), d.Days.Sum(p => p.Cost));
        Assert.Equal(recent.Sum(e => e.Tokens.Total), d.Days.Sum(p => p.Tokens));
        var todays = recent.Where(e => DateOnly.FromDateTime(e.StartedAt.UtcDateTime) == today).ToList();
        Assert.Equal(todays.Count, d.RequestsToday);
        Assert.Equal(todays.Sum(e => e.Tokens.Total), d.TokensToday);

        foreach (var (list, by) in new[] { (d.ByModel, (Func<Gateway.Core.Usage.UsageEvent, string>)(e => e.Model)), (d.ByUpstream, e => e.Upstream) })
        {
            var expected = recent.GroupBy(by).ToDictionary(g => g.Key, g => g.Sum(e => e.Cost));
            Assert.Equal(expected.Count, list.Count);
            foreach (var b in list) Assert.Equal(expected[b.Name], b.Cost);
            for (var i = 1; i < list.Count; i++) Assert.True(list[i - 1].Cost >= list[i].Cost);
        }

        Assert.Equal(["alice-ci", "alice-laptop"], d.Keys.Select(k => k.Name));
        var ci = d.Keys[0];
        Assert.Equal("tg-abc1", ci.KeyPrefix);
        Assert.Equal(recent.Where(e => e.KeyId == f.AliceKey1.ToString()).Sum(e => e.Cost), ci.Spend30d);
        Assert.Equal(recent.Count(e => e.KeyId == f.AliceKey1.ToString()), ci.Requests30d);
    }

    [Fact]
    public async Task A_user_without_budget_counts_all_consumption_and_an_unknown_user_has_no_dashboard()
    {
        var d = await new DashboardQueries(f.DataSource).LoadAsync(f.Bob, f.Now);
        Assert.NotNull(d);
        Assert.Null(d.Period);
        Assert.Null(d.BudgetRemaining);
        var bobCost = f.Events.Where(e => e.UserId == f.Bob.ToString()).Sum(e => e.Cost);
        Assert.Equal(bobCost, d.SpentThisPeriod);
        Assert.Equal(10m - bobCost, d.Balance);
        Assert.Null(await new DashboardQueries(f.DataSource).LoadAsync(Guid.NewGuid(), f.Now));
    }
}
