using System.Data.Common;
using System.Globalization;
using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gateway.Portal.Admin;

/// <summary>
/// The admin page's spend and tokens over the last 30 UTC days, by day, model and user. They come from the global
/// roll-ups <c>usage_daily_by_model</c> and <c>usage_daily_by_user</c> (migration M0006, kept by the ledger writer),
/// whose size is days × models and days × users whatever the number of requests, in one round trip of three
/// queries. Each replica reuses the figures for <see cref="RefreshInterval"/>.
/// </summary>
public sealed class SpendSnapshot(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider time)
{
    public const int WindowDays = 30;
    public const int TopRows = 50;
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMinutes(1);

    private readonly SemaphoreSlim _refresh = new(1, 1);
    private DateTimeOffset _refreshedAt = DateTimeOffset.MinValue;
    private SpendFigures? _figures;

    public async Task<SpendFigures> GetAsync(CancellationToken ct)
    {
        if (Fresh(time.GetUtcNow()) is { } f) return f;
        await _refresh.WaitAsync(ct);
        try
        {
            var now = time.GetUtcNow();
            if (Fresh(now) is { } again) return again;
            _figures = await ReadAsync(DateOnly.FromDateTime(now.UtcDateTime), ct);
            _refreshedAt = now;
            return _figures;
        }
        finally
        {
            _refresh.Release();
        }
    }

    private SpendFigures? Fresh(DateTimeOffset now) =>
        _figures is { } f && now - _refreshedAt < RefreshInterval && now >= _refreshedAt ? f : null;

    private async Task<SpendFigures> ReadAsync(DateOnly today, CancellationToken ct)
    {
        var first = today.AddDays(-(WindowDays - 1));
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var conn = (NpgsqlConnection)db.Database.GetDbConnection();
        await db.Database.OpenConnectionAsync(ct);
        await using var batch = new NpgsqlBatch(conn);
        const string Sums = "sum(requests)::bigint, sum(tokens)::bigint, sum(cost)";
        Add(batch, $"SELECT day, {Sums} FROM usage_daily_by_model WHERE day BETWEEN @first AND @today GROUP BY day", first, today);
        Add(batch, $"""
            SELECT model, {Sums} FROM usage_daily_by_model WHERE day BETWEEN @first AND @today
            GROUP BY model ORDER BY 4 DESC, 1 LIMIT {TopRows}
            """, first, today);
        Add(batch, $"""
            SELECT coalesce(u.namespace || '/' || u.name, '-'), t.requests, t.tokens, t.cost
            FROM (SELECT user_id, {Sums}
                  FROM usage_daily_by_user WHERE day BETWEEN @first AND @today
                  GROUP BY user_id ORDER BY sum(cost) DESC, user_id LIMIT {TopRows}) AS t(user_id, requests, tokens, cost)
            LEFT JOIN users u ON u.id = t.user_id
            ORDER BY t.cost DESC, 1
            """, first, today);
        await using var reader = await batch.ExecuteReaderAsync(ct);
        var days = new Dictionary<DateOnly, SpendRow>();
        while (await reader.ReadAsync(ct)) days[reader.GetFieldValue<DateOnly>(0)] = Row(reader, "");
        var byDay = Enumerable.Range(0, WindowDays).Select(i => first.AddDays(i)).Select(d =>
        {
            var key = d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            if (!days.TryGetValue(d, out var r)) return new SpendRow { Key = key };
            r.Key = key;
            return r;
        }).ToList();
        await reader.NextResultAsync(ct);
        var byModel = new List<SpendRow>();
        while (await reader.ReadAsync(ct)) byModel.Add(Row(reader, reader.GetString(0)));
        await reader.NextResultAsync(ct);
        var byUser = new List<SpendRow>();
        while (await reader.ReadAsync(ct)) byUser.Add(Row(reader, reader.GetString(0)));
        return new SpendFigures(byDay, byModel, byUser);
    }

    private static void Add(NpgsqlBatch batch, string sql, DateOnly first, DateOnly today) =>
        batch.BatchCommands.Add(new NpgsqlBatchCommand(sql) { Parameters = { new("first", first), new("today", today) } });

    private static SpendRow Row(DbDataReader r, string key) =>
        new() { Key = key, Requests = r.GetInt64(1), Tokens = r.GetInt64(2), Spend = r.GetDecimal(3) };
}

/// <summary>The admin spend page's three tables.</summary>
public sealed record SpendFigures(IReadOnlyList<SpendRow> ByDay, IReadOnlyList<SpendRow> ByModel, IReadOnlyList<SpendRow> ByUser);
