using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gateway.Portal.Admin;

/// <summary>
/// The admin page's spend and tokens over the last 30 UTC days, by day, model and user, summed from the usage_daily
/// roll-up. Summing 30 days of every user's roll-up rows takes seconds at 10,000 users, so each replica keeps the
/// totals of closed days (before yesterday, which no longer change) in memory and re-reads only yesterday and
/// today, at most once per <see cref="RefreshInterval"/>. The first view after start reads the whole window once.
/// </summary>
public sealed class SpendSnapshot(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider time)
{
    public const int WindowDays = 30;
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMinutes(1);

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private readonly Dictionary<DateOnly, DayTotals> _days = [];
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;
    private SpendFigures? _figures;

    /// <summary>Totals of one UTC day.</summary>
    private sealed record DayTotals(Dictionary<string, SpendRow> ByModel, Dictionary<Guid, SpendRow> ByUser, SpendRow Total);

    public async Task<SpendFigures> GetAsync(CancellationToken ct)
    {
        var now = time.GetUtcNow();
        if (_figures is { } f && now - _refreshedAt < RefreshInterval && now >= _refreshedAt) return f;
        await _refresh.WaitAsync(ct);
        try
        {
            now = time.GetUtcNow();
            if (_figures is { } again && now - _refreshedAt < RefreshInterval && now >= _refreshedAt) return again;
            var today = DateOnly.FromDateTime(now.UtcDateTime);
            var first = today.AddDays(-(WindowDays - 1));
            foreach (var old in _days.Keys.Where(d => d < first).ToList()) _days.Remove(old);
            // Yesterday and today still grow; older days are read once.
            var wanted = Enumerable.Range(0, WindowDays).Select(i => first.AddDays(i))
                .Where(d => d >= today.AddDays(-1) || !_days.ContainsKey(d)).ToArray();
            foreach (var (day, totals) in await ReadDaysAsync(wanted, ct)) _days[day] = totals;
            foreach (var d in wanted.Where(d => !_days.ContainsKey(d))) _days[d] = Empty();
            _figures = await ComposeAsync(ct);
            _refreshedAt = now;
            return _figures;
        }
        finally
        {
            _refresh.Release();
        }
    }

    private static DayTotals Empty() => new([], [], new SpendRow());

    private async Task<Dictionary<DateOnly, DayTotals>> ReadDaysAsync(DateOnly[] days, CancellationToken ct)
    {
        var result = new Dictionary<DateOnly, DayTotals>();
        if (days.Length == 0) return result;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await db.Database.SqlQueryRaw<GroupRow>("""
            SELECT day AS "Day", grouping(model) AS "ByUser", model AS "Model", user_id AS "UserId",
                   coalesce(sum(cost), 0) AS "Spend",
                   coalesce(sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), 0)::bigint AS "Tokens",
                   coalesce(sum(requests), 0)::bigint AS "Requests"
            FROM usage_daily WHERE day = ANY(@days)
            GROUP BY GROUPING SETS ((day, model), (day, user_id))
            """, new NpgsqlParameter("days", days)).ToListAsync(ct);
        foreach (var r in rows)
        {
            if (!result.TryGetValue(r.Day, out var t)) result[r.Day] = t = Empty();
            var row = new SpendRow { Spend = r.Spend, Tokens = r.Tokens, Requests = r.Requests };
            if (r.ByUser == 0)
            {
                t.ByModel[r.Model ?? ""] = row;
                t.Total.Spend += r.Spend;
                t.Total.Tokens += r.Tokens;
                t.Total.Requests += r.Requests;
            }
            else
            {
                t.ByUser[r.UserId ?? Guid.Empty] = row;
            }
        }
        return result;
    }

    private async Task<SpendFigures> ComposeAsync(CancellationToken ct)
    {
        var byDay = _days.OrderBy(d => d.Key)
            .Select(d => new SpendRow { Key = d.Key.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture), Spend = d.Value.Total.Spend, Tokens = d.Value.Total.Tokens, Requests = d.Value.Total.Requests })
            .ToList();
        var byModel = Sum(_days.Values.SelectMany(d => d.ByModel)).Take(50).ToList();
        var userTotals = Sum(_days.Values.SelectMany(d => d.ByUser)).Take(50).ToList();
        var ids = userTotals.Select(u => u.Key).Where(id => id != Guid.Empty).ToArray();
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var names = await db.Users.AsNoTracking().Where(u => ids.Contains(u.Id))
            .Select(u => new { u.Id, Name = u.Namespace + "/" + u.Name }).ToDictionaryAsync(u => u.Id, u => u.Name, ct);
        var byUser = userTotals.Select(u => new SpendRow { Key = names.GetValueOrDefault(u.Key, "-"), Spend = u.Value.Spend, Tokens = u.Value.Tokens, Requests = u.Value.Requests }).ToList();
        return new SpendFigures(byDay, byModel.Select(m => new SpendRow { Key = m.Key, Spend = m.Value.Spend, Tokens = m.Value.Tokens, Requests = m.Value.Requests }).ToList(), byUser);
    }

    private static IEnumerable<KeyValuePair<TKey, SpendRow>> Sum<TKey>(IEnumerable<KeyValuePair<TKey, SpendRow>> parts) where TKey : notnull
    {
        var sums = new Dictionary<TKey, SpendRow>();
        foreach (var (k, v) in parts)
        {
            if (!sums.TryGetValue(k, out var s)) sums[k] = s = new SpendRow();
            s.Spend += v.Spend;
            s.Tokens += v.Tokens;
            s.Requests += v.Requests;
        }
        return sums.OrderByDescending(s => s.Value.Spend).ThenBy(s => s.Key.ToString(), StringComparer.Ordinal);
    }

    private sealed class GroupRow
    {
        public DateOnly Day { get; set; }
        public int ByUser { get; set; }
        public string? Model { get; set; }
        public Guid? UserId { get; set; }
        public decimal Spend { get; set; }
        public long Tokens { get; set; }
        public long Requests { get; set; }
    }
}

/// <summary>The admin spend page's three tables.</summary>
public sealed record SpendFigures(IReadOnlyList<SpendRow> ByDay, IReadOnlyList<SpendRow> ByModel, IReadOnlyList<SpendRow> ByUser);
