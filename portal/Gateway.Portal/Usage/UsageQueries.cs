using System.Data;
using System.Text;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Portal.Usage;

/// <summary>
/// The usage table, its totals and one request's detail, always scoped to one user. Rows come from
/// <c>usage_log</c> through its (user_id, started_at, id) indexes with keyset pagination, so page 100 costs
/// what page 1 does; totals come from the <c>usage_daily</c> roll-up, whose key holds every filter dimension.
/// </summary>
public sealed class UsageQueries(NpgsqlDataSource dataSource)
{
    public const int DefaultPageSize = 50;

    internal const string RowColumns = """
        u.id, u.request_id, u.started_at, u.api_key_id, k.name, u.model, u.upstream, u.status, u.error_code, u.streamed,
        u.input_tokens, u.cached_input_tokens, u.cache_write_tokens, u.output_tokens, u.cost, u.duration_ms
        """;

    /// <summary>
    /// One page, newest first: after <paramref name="older"/> (the next, older page) or before
    /// <paramref name="newer"/> (the previous one); neither gives the newest page.
    /// </summary>
    public async Task<UsagePage> PageAsync(Guid userId, UsageFilter filter, UsageCursor? older, UsageCursor? newer, int pageSize = DefaultPageSize, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        pageSize = Math.Clamp(pageSize, 1, 500);
        await using var cmd = dataSource.CreateCommand();
        var sql = new StringBuilder("SELECT ").Append(RowColumns)
            .Append(" FROM usage_log u LEFT JOIN api_keys k ON k.id = u.api_key_id WHERE u.user_id = @user");
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        filter.AppendLogConditions(sql, cmd.Parameters, "u");
        var backwards = older is null && newer is not null;
        if (older is { } o)
        {
            sql.Append(" AND (u.started_at, u.id) < (@cts, @cid)");
            AddCursor(cmd, o);
        }
        else if (newer is { } n)
        {
            sql.Append(" AND (u.started_at, u.id) > (@cts, @cid)");
            AddCursor(cmd, n);
        }
        sql.Append(backwards ? " ORDER BY u.started_at, u.id" : " ORDER BY u.started_at DESC, u.id DESC");
        sql.Append(" LIMIT ").Append(pageSize + 1);
        cmd.CommandText = sql.ToString();

        var rows = new List<UsageRow>(pageSize + 1);
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            while (await reader.ReadAsync(ct)) rows.Add(ReadRow(reader));
        }
        var more = rows.Count > pageSize;
        if (more) rows.RemoveAt(rows.Count - 1);
        if (backwards) rows.Reverse();
        if (rows.Count == 0) return new UsagePage(rows, null, null);
        // Going back, "more" means there are newer rows still; going forward, older ones.
        var hasOlder = backwards ? true : more;
        var hasNewer = backwards ? more : older is not null;
        return new UsagePage(rows,
            hasOlder ? new UsageCursor(rows[^1].StartedAt, rows[^1].Id) : null,
            hasNewer ? new UsageCursor(rows[0].StartedAt, rows[0].Id) : null);
    }

    private static void AddCursor(NpgsqlCommand cmd, UsageCursor c)
    {
        cmd.Parameters.Add(new NpgsqlParameter("cts", NpgsqlDbType.TimestampTz) { Value = c.StartedAt.UtcDateTime });
        cmd.Parameters.Add(new NpgsqlParameter("cid", NpgsqlDbType.Bigint) { Value = c.Id });
    }

    internal static UsageRow ReadRow(NpgsqlDataReader r) => new(
        r.GetInt64(0), r.GetString(1), r.GetFieldValue<DateTimeOffset>(2), r.IsDBNull(3) ? null : r.GetGuid(3),
        r.IsDBNull(4) ? null : r.GetString(4), r.GetString(5), r.GetString(6), r.GetInt32(7), r.IsDBNull(8) ? null : r.GetString(8),
        r.GetBoolean(9), r.GetInt64(10), r.GetInt64(11), r.GetInt64(12), r.GetInt64(13), r.GetDecimal(14), r.GetInt32(15));

    /// <summary>Sums over every row the filter matches, from the daily roll-up.</summary>
    public async Task<UsageTotals> TotalsAsync(Guid userId, UsageFilter filter, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(filter);
        await using var cmd = dataSource.CreateCommand();
        var sql = new StringBuilder("""
            SELECT coalesce(sum(d.requests), 0)::bigint, coalesce(sum(d.errors), 0)::bigint, coalesce(sum(d.input_tokens), 0)::bigint,
                coalesce(sum(d.cached_input_tokens), 0)::bigint, coalesce(sum(d.cache_write_tokens), 0)::bigint,
                coalesce(sum(d.output_tokens), 0)::bigint, coalesce(sum(d.cost), 0)
            FROM usage_daily d WHERE d.user_id = @user
            """);
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        filter.AppendDailyConditions(sql, cmd.Parameters, "d");
        cmd.CommandText = sql.ToString();
        await using var r = await cmd.ExecuteReaderAsync(CommandBehavior.SingleRow, ct);
        await r.ReadAsync(ct);
        return new UsageTotals(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetDecimal(6));
    }

    /// <summary>One request of this user, or null (unknown, or another user's: the two are indistinguishable).</summary>
    public async Task<UsageDetail?> DetailAsync(Guid userId, string requestId, CancellationToken ct = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            SELECT u.request_id, u.started_at, u.api_key_id, k.name, k.key_prefix, u.key_version, u.model, u.upstream, u.route,
                u.status, u.error_code, u.streamed, u.estimated, u.input_tokens, u.cached_input_tokens, u.cache_write_tokens,
                u.output_tokens, u.cost, u.price_version, u.ttfb_ms, u.duration_ms, u.client_ip
            FROM usage_log u LEFT JOIN api_keys k ON k.id = u.api_key_id
            WHERE u.request_id = @rid AND u.user_id = @user
            """);
        cmd.Parameters.Add(new NpgsqlParameter("rid", NpgsqlDbType.Text) { Value = requestId });
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        await using var r = await cmd.ExecuteReaderAsync(CommandBehavior.SingleRow, ct);
        if (!await r.ReadAsync(ct)) return null;
        return new UsageDetail(
            r.GetString(0), r.GetFieldValue<DateTimeOffset>(1), r.IsDBNull(2) ? null : r.GetGuid(2), r.IsDBNull(3) ? null : r.GetString(3),
            r.IsDBNull(4) ? null : r.GetString(4), r.GetInt32(5), r.GetString(6), r.GetString(7), r.GetString(8), r.GetInt32(9),
            r.IsDBNull(10) ? null : r.GetString(10), r.GetBoolean(11), r.GetBoolean(12), r.GetInt64(13), r.GetInt64(14), r.GetInt64(15),
            r.GetInt64(16), r.GetDecimal(17), r.GetString(18), r.IsDBNull(19) ? null : r.GetInt32(19), r.GetInt32(20),
            r.IsDBNull(21) ? null : r.GetString(21));
    }

    /// <summary>The user's keys (for the key filter) and the models they used (for the model filter), in one round trip.</summary>
    public async Task<(IReadOnlyList<(Guid Id, string Name)> Keys, IReadOnlyList<string> Models)> FilterChoicesAsync(Guid userId, CancellationToken ct = default)
    {
        await using var batch = dataSource.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT id, name FROM api_keys WHERE user_id = @user ORDER BY name") { Parameters = { new("user", NpgsqlDbType.Uuid) { Value = userId } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT DISTINCT model FROM usage_daily WHERE user_id = @user ORDER BY model") { Parameters = { new("user", NpgsqlDbType.Uuid) { Value = userId } } });
        await using var r = await batch.ExecuteReaderAsync(ct);
        var keys = new List<(Guid, string)>();
        while (await r.ReadAsync(ct)) keys.Add((r.GetGuid(0), r.GetString(1)));
        await r.NextResultAsync(ct);
        var models = new List<string>();
        while (await r.ReadAsync(ct)) models.Add(r.GetString(0));
        return (keys, models);
    }
}
