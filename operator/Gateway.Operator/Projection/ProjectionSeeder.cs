using System.Globalization;
using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Npgsql;

namespace Gateway.Operator.Projection;

/// <summary>
/// Puts back, from PostgreSQL, the Redis state that is money or a limit on money when Redis lost its data (flushed,
/// or restarted without its append-only file): every user's balance (the ledger's sum, and the grants it includes),
/// every key's lifetime tokens and spend, and every budget's spend in its current period (both from
/// <c>usage_log</c>). Each value is written only where Redis has none, before the reconcilers rewrite the rest of
/// the projection; the proxy admits nobody whose balance is missing, so nobody is admitted against a half-built state.
/// </summary>
/// <remarks>
/// Runs inside <see cref="ProjectionRebuildGate"/>, so no ledger batch read before the loss commits while the
/// ledger is summed. Returns the Redis time at which it began: the epoch the caller marks when the rebuild is complete,
/// which tells each process's <see cref="UsageOutbox"/> which of its events Redis lost.
/// </remarks>
public sealed partial class ProjectionSeeder(
    IRedisClient redis,
    ProjectionKeys keys,
    ProjectionWriter projection,
    NpgsqlDataSource dataSource,
    ProjectionRebuildGate gate,
    TimeProvider time,
    ILogger<ProjectionSeeder> logger)
{
    /// <summary>Seeds what is missing; returns the epoch to mark once the rest of the projection is rebuilt.</summary>
    public async Task<string> SeedAsync(CancellationToken ct)
    {
        var began = await projection.BeginRebuildAsync(ct);
        var (users, keysSeeded, budgets) = (0, 0, 0);
        using (await gate.EnterAsync(ct))
        {
            await using var conn = await dataSource.OpenConnectionAsync(ct);
            // Limits first, balances last: a user is admitted again only once the balance exists.
            keysSeeded = await SeedLifetimesAsync(conn, ct);
            budgets = await SeedBudgetsAsync(conn, ct);
            users = await SeedBalancesAsync(conn, ct);
        }
        LogSeeded(logger, users, keysSeeded, budgets);
        return began;
    }

    private async Task<int> SeedBalancesAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT u.id, coalesce(sum(e.amount), 0), coalesce(array_agg(e.grant_id) FILTER (WHERE e.kind = 'grant'), '{}')
            FROM users u LEFT JOIN ledger_entries e ON e.user_id = u.id
            WHERE u.deleted_at IS NULL
            GROUP BY u.id
            """, conn);
        var rows = new List<(Guid Id, decimal Balance, string[] Grants)>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) rows.Add((r.GetGuid(0), r.GetDecimal(1), r.GetFieldValue<string[]>(2)));
        var seeded = 0;
        foreach (var (id, balance, grants) in rows)
            if (await projection.InitBalanceAsync(id.ToString(), Money.ToMicrosFloor(balance), grants, ct)) seeded++;
        return seeded;
    }

    private async Task<int> SeedLifetimesAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        // What settlement adds to a key's lifetime: its tokens, and each cost rounded up to a micro-dollar.
        // The key's counters live in its owner's shard (ProjectionKeys), so the owner comes from api_keys.
        await using var cmd = new NpgsqlCommand("""
            SELECT l.api_key_id, k.user_id, sum(l.input_tokens + l.cached_input_tokens + l.cache_write_tokens + l.output_tokens)::bigint,
                sum(ceil(l.cost * 1000000))::bigint
            FROM usage_log l JOIN api_keys k ON k.id = l.api_key_id
            GROUP BY l.api_key_id, k.user_id
            """, conn);
        var rows = new List<(Guid Key, Guid User, long Tokens, long Micros)>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) rows.Add((r.GetGuid(0), r.GetGuid(1), r.GetInt64(2), r.GetInt64(3)));
        var seeded = 0;
        foreach (var (key, user, tokens, micros) in rows)
            if (await projection.SeedKeyLifetimeAsync(user.ToString(), key.ToString(), tokens, micros, ct)) seeded++;
        return seeded;
    }

    private async Task<int> SeedBudgetsAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        var users = new List<(Guid Id, Budget Budget)>();
        await using (var cmd = new NpgsqlCommand("SELECT id, spec::text FROM users WHERE deleted_at IS NULL AND spec ? 'budget'", conn))
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct))
            {
                var spec = JsonSerializer.Deserialize<UserQuotaSpec>(r.GetString(1), TokenGateJson.Options);
                if (spec?.Budget is { } b) users.Add((r.GetGuid(0), b));
            }
        }
        var now = time.GetUtcNow();
        var seeded = 0;
        foreach (var (id, budget) in users)
        {
            BudgetPeriod? period;
            try { period = BudgetCalendar.CurrentPeriod(budget, now); }
            catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException) { period = BudgetCalendar.CurrentPeriod(budget.Period, "UTC", now); }
            await using var sum = new NpgsqlCommand("""
                SELECT coalesce(sum(ceil(cost * 1000000)), 0)::bigint FROM usage_log
                WHERE user_id = @u AND started_at >= @from AND started_at < @to
                """, conn);
            sum.Parameters.AddWithValue("u", id);
            sum.Parameters.AddWithValue("from", period?.Start.UtcDateTime ?? DateTime.UnixEpoch);
            sum.Parameters.AddWithValue("to", period?.End.UtcDateTime ?? DateTime.MaxValue.ToUniversalTime());
            var spent = (long)(await sum.ExecuteScalarAsync(ct))!;
            var key = keys.BudgetSpent(id.ToString(), period?.Id ?? "none");
            // The same lifetime as admission gives a period key: a week past the period's end.
            List<RedisArg> args = [key, spent, "NX"];
            if (period is { } p)
            {
                args.Add("PX");
                args.Add(Math.Max(1, (long)(p.End - now + TimeSpan.FromDays(7)).TotalMilliseconds));
            }
            if (!(await redis.ExecuteAsync("SET", args, ct)).IsNull) seeded++;
        }
        return seeded;
    }

    [LoggerMessage(720, LogLevel.Warning, "Rebuilt the money in Redis from PostgreSQL: {Users} balances, {Keys} key lifetimes, {Budgets} budget periods")]
    private static partial void LogSeeded(ILogger logger, int users, int keys, int budgets);
}
