using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Portal.Usage;

/// <summary>One UTC day of the last 30: spend and tokens.</summary>
public sealed record DailyPoint(DateOnly Day, decimal Cost, long Tokens, long Requests);

/// <summary>Spend and tokens of one model or upstream over the last 30 days.</summary>
public sealed record Breakdown(string Name, decimal Cost, long Tokens, long Requests);

/// <summary>Everything the dashboard shows.</summary>
public sealed record Dashboard
{
    public required decimal Balance { get; init; }
    public Budget? Budget { get; init; }
    public BudgetPeriod? Period { get; init; }
    /// <summary>Consumption since the period began (all time for a budget that never resets), as the operator counts it.</summary>
    public required decimal SpentThisPeriod { get; init; }
    public RateLimits? Limits { get; init; }
    public bool Suspended { get; init; }
    public long RequestsToday { get; init; }
    public long TokensToday { get; init; }
    public required IReadOnlyList<DailyPoint> Days { get; init; }
    public required IReadOnlyList<Breakdown> ByModel { get; init; }
    public required IReadOnlyList<Breakdown> ByUpstream { get; init; }
    public required IReadOnlyList<KeySummary> Keys { get; init; }

    public decimal? BudgetRemaining => Budget is { } b ? b.Amount - SpentThisPeriod : null;
}

/// <summary>
/// The dashboard in two round trips: the user's spec, balance and keys; then the period's spend, today's use
/// and the 30-day series and breakdowns, all from the roll-ups (never a scan of usage_log or the ledger).
/// </summary>
public sealed class DashboardQueries(NpgsqlDataSource dataSource)
{
    public const int Days = 30;

    /// <summary>The dashboard of a user, or null when the user does not exist.</summary>
    public async Task<Dashboard?> LoadAsync(Guid userId, DateTimeOffset now, CancellationToken ct = default)
    {
        var today = DateOnly.FromDateTime(now.UtcDateTime);
        var firstDay = today.AddDays(-(Days - 1));
        UserQuotaSpec spec;
        bool suspended;
        decimal balance;
        var keys = new List<KeySummary>();
        await using (var batch = dataSource.CreateBatch())
        {
            batch.BatchCommands.Add(Command("SELECT spec::text, suspended, " + LedgerQueries.BalanceSql + " FROM users WHERE id = @user", userId));
            batch.BatchCommands.Add(Command("""
                SELECT k.id, k.name, k.description, k.key_prefix, k.disabled, k.expires_at, k.last_used_at,
                    coalesce(s.requests, 0)::bigint, coalesce(s.cost, 0)
                FROM api_keys k LEFT JOIN (
                    SELECT api_key_id, sum(requests) AS requests, sum(cost) AS cost FROM usage_daily
                    WHERE user_id = @user AND day >= @first GROUP BY api_key_id) s ON s.api_key_id = k.id
                WHERE k.user_id = @user AND k.deleted_at IS NULL ORDER BY k.name
                """, userId, ("first", NpgsqlDbType.Date, firstDay)));
            await using var r = await batch.ExecuteReaderAsync(ct);
            if (!await r.ReadAsync(ct)) return null;
            spec = JsonSerializer.Deserialize<UserQuotaSpec>(r.GetString(0), TokenGateJson.Options) ?? new UserQuotaSpec();
            suspended = r.GetBoolean(1);
            balance = r.GetDecimal(2);
            await r.NextResultAsync(ct);
            while (await r.ReadAsync(ct))
            {
                keys.Add(new KeySummary(r.GetGuid(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3),
                    r.GetBoolean(4), r.IsDBNull(5) ? null : r.GetFieldValue<DateTimeOffset>(5), r.IsDBNull(6) ? null : r.GetFieldValue<DateTimeOffset>(6),
                    r.GetInt64(7), r.GetDecimal(8)));
            }
        }

        BudgetPeriod? period = null;
        try { period = BudgetCalendar.CurrentPeriod(spec.Budget, now); }
        catch (Exception e) when (e is ArgumentException or TimeZoneNotFoundException or InvalidTimeZoneException) { }

        var days = new List<DailyPoint>(Days);
        var byModel = new List<Breakdown>();
        var byUpstream = new List<Breakdown>();
        decimal spent;
        long requestsToday = 0, tokensToday = 0;
        await using (var batch = dataSource.CreateBatch())
        {
            batch.BatchCommands.Add(PeriodSpend(userId, period?.Start));
            batch.BatchCommands.Add(Command("""
                SELECT day, sum(cost), sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens)::bigint, sum(requests)::bigint
                FROM usage_daily WHERE user_id = @user AND day >= @first GROUP BY day ORDER BY day
                """, userId, ("first", NpgsqlDbType.Date, firstDay)));
            foreach (var column in new[] { "model", "upstream" })
            {
                batch.BatchCommands.Add(Command($"""
                    SELECT {column}, sum(cost), sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens)::bigint, sum(requests)::bigint
                    FROM usage_daily WHERE user_id = @user AND day >= @first GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT 12
                    """, userId, ("first", NpgsqlDbType.Date, firstDay)));
            }
            await using var r = await batch.ExecuteReaderAsync(ct);
            await r.ReadAsync(ct);
            spent = -r.GetDecimal(0);
            await r.NextResultAsync(ct);
            var byDay = new Dictionary<DateOnly, DailyPoint>();
            while (await r.ReadAsync(ct))
            {
                var p = new DailyPoint(r.GetFieldValue<DateOnly>(0), r.GetDecimal(1), r.GetInt64(2), r.GetInt64(3));
                byDay[p.Day] = p;
            }
            // Every day appears, with zeros for days without use, so the chart's axis is even.
            for (var d = firstDay; d <= today; d = d.AddDays(1)) days.Add(byDay.TryGetValue(d, out var p) ? p : new DailyPoint(d, 0, 0, 0));
            if (byDay.TryGetValue(today, out var t)) (requestsToday, tokensToday) = (t.Requests, t.Tokens);
            foreach (var list in new[] { byModel, byUpstream })
            {
                await r.NextResultAsync(ct);
                while (await r.ReadAsync(ct)) list.Add(new Breakdown(r.GetString(0), r.GetDecimal(1), r.GetInt64(2), r.GetInt64(3)));
            }
        }

        return new Dashboard
        {
            Balance = balance,
            Budget = spec.Budget,
            Period = period,
            SpentThisPeriod = spent,
            Limits = spec.Limits,
            Suspended = suspended,
            RequestsToday = requestsToday,
            TokensToday = tokensToday,
            Days = days,
            ByModel = byModel,
            ByUpstream = byUpstream,
            Keys = keys,
        };
    }

    /// <summary>
    /// Σ consume and expire entries since <paramref name="start"/> (negative), the operator's definition of
    /// spentThisPeriod: whole UTC days from ledger_daily, the partial first day (a period starting at a local
    /// midnight that is not UTC midnight) from ledger_entries through its (user_id, created_at) index.
    /// </summary>
    private static NpgsqlBatchCommand PeriodSpend(Guid userId, DateTimeOffset? start)
    {
        if (start is not { } s)
        {
            return Command("""
                SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_daily WHERE user_id = @user)
                     + (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = @user AND kind = 'expire')
                """, userId);
        }
        var utc = s.UtcDateTime;
        var startDay = DateOnly.FromDateTime(utc);
        var aligned = utc.TimeOfDay == TimeSpan.Zero;
        var firstWholeDay = aligned ? startDay : startDay.AddDays(1);
        var firstWholeDayStart = firstWholeDay.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        return Command("""
            SELECT (SELECT coalesce(sum(amount), 0) FROM ledger_daily WHERE user_id = @user AND day >= @wholeday)
                 + (SELECT coalesce(sum(amount), 0) FROM ledger_entries
                    WHERE user_id = @user AND kind = 'consume' AND created_at >= @start AND created_at < @wholedaystart)
                 + (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = @user AND kind = 'expire' AND created_at >= @start)
            """, userId, ("wholeday", NpgsqlDbType.Date, firstWholeDay), ("start", NpgsqlDbType.TimestampTz, utc),
            ("wholedaystart", NpgsqlDbType.TimestampTz, firstWholeDayStart));
    }

    private static NpgsqlBatchCommand Command(string sql, Guid userId, params (string Name, NpgsqlDbType Type, object Value)[] parameters)
    {
        var c = new NpgsqlBatchCommand(sql);
        c.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        foreach (var (name, type, value) in parameters) c.Parameters.Add(new NpgsqlParameter(name, type) { Value = value });
        return c;
    }
}
