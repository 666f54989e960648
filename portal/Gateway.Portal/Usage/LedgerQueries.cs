using Npgsql;
using NpgsqlTypes;

namespace Gateway.Portal.Usage;

/// <summary>One line of the ledger history: a single entry, or a day's consumption summed.</summary>
/// <param name="At">When: the entry's time, or for a day's consumption its last request.</param>
/// <param name="Kind">grant, consume (a day), refund, adjust or expire.</param>
/// <param name="Day">The UTC day of a consumption line.</param>
/// <param name="Entries">Requests summed into a consumption line (1 otherwise).</param>
/// <param name="Balance">The running balance after this line.</param>
public sealed record LedgerLine(DateTimeOffset At, string Kind, DateOnly? Day, decimal Amount, long Entries, string? GrantId, string? Reason, decimal Balance);

/// <summary>
/// The ledger as the user sees it. The record is <c>ledger_entries</c>; consumption (one entry per request)
/// is read from its per-day roll-up <c>ledger_daily</c>, everything else entry by entry through a partial
/// index. Balance = Σ of both = Σ ledger_entries, exactly (numeric, no rounding).
/// </summary>
public sealed class LedgerQueries(NpgsqlDataSource dataSource)
{
    /// <summary>The balance SQL for user @user, shared with the dashboard so both read the same sum.</summary>
    internal const string BalanceSql = """
        (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = @user AND kind <> 'consume')
        + (SELECT coalesce(sum(amount), 0) FROM ledger_daily WHERE user_id = @user)
        """;

    /// <summary>The user's balance (USD).</summary>
    public async Task<decimal> BalanceAsync(Guid userId, CancellationToken ct = default)
    {
        await using var cmd = dataSource.CreateCommand("SELECT " + BalanceSql);
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        return (decimal)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// The history oldest to newest with the running balance after each line; the last line's balance is the
    /// balance. A day's consumption is placed at its last request, after the day's earlier entries.
    /// </summary>
    public async Task<IReadOnlyList<LedgerLine>> HistoryAsync(Guid userId, CancellationToken ct = default)
    {
        await using var cmd = dataSource.CreateCommand("""
            WITH lines AS (
                SELECT created_at AS at, kind, NULL::date AS day, amount, 1::bigint AS entries, grant_id, reason, id AS seq
                FROM ledger_entries WHERE user_id = @user AND kind <> 'consume'
                UNION ALL
                SELECT last_at, 'consume', day, amount, entries, NULL, NULL, 0
                FROM ledger_daily WHERE user_id = @user
            )
            SELECT at, kind, day, amount, entries, grant_id, reason,
                sum(amount) OVER (ORDER BY at, seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            FROM lines ORDER BY at, seq
            """);
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Uuid) { Value = userId });
        var lines = new List<LedgerLine>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            lines.Add(new LedgerLine(r.GetFieldValue<DateTimeOffset>(0), r.GetString(1), r.IsDBNull(2) ? null : r.GetFieldValue<DateOnly>(2),
                r.GetDecimal(3), r.GetInt64(4), r.IsDBNull(5) ? null : r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetDecimal(7)));
        }
        return lines;
    }
}
