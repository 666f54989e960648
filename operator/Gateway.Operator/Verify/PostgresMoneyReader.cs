using System.Data;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Operator.Verify;

/// <summary>A user row: id and the UserQuota's namespace/name.</summary>
internal sealed record LedgerUser(Guid Id, string Namespace, string Name, bool Deleted)
{
    public string DisplayName => Namespace + "/" + Name;
}

/// <summary>Sum of some ledger entries: exact, and with each amount rounded down to whole micro-dollars.</summary>
internal readonly record struct LedgerSum(long Count, decimal Usd, decimal FloorMicros);

/// <summary>A usage row persisted at or after the snapshot's start (see <see cref="ConservationChecker"/>).</summary>
internal sealed record LateUsageRow(string RequestId, Guid? UserId, bool BeforeSnapshotEnd);

/// <summary>Violations of one kind found by SQL: how many, and the first few.</summary>
internal sealed record ViolationRows(string Kind, long Total, IReadOnlyList<Violation> Listed);

/// <summary>What PostgreSQL says, read in one repeatable-read snapshot after Redis' snapshot.</summary>
internal sealed record LedgerFacts
{
    public required IReadOnlyList<(Guid UserId, string GrantId, decimal Amount)> Grants { get; init; }
    /// <summary>Consume entries whose usage row was persisted before the snapshot started (or that have no usage row).</summary>
    public required IReadOnlyDictionary<Guid, LedgerSum> Consumed { get; init; }
    /// <summary>refund, adjust and expire entries created before the snapshot started.</summary>
    public required IReadOnlyDictionary<Guid, LedgerSum> Other { get; init; }
    public required IReadOnlyList<LateUsageRow> LateRows { get; init; }
    /// <summary>Request ids of the snapshot's stream entries that were already in usage_log before it.</summary>
    public required IReadOnlySet<string> PersistedStreamIds { get; init; }
    /// <summary>Request ids of open reservations that already had a usage row before the snapshot.</summary>
    public required IReadOnlySet<string> ChargedReservationIds { get; init; }
    public required long GrantEntries { get; init; }
    public required long ConsumeEntries { get; init; }
    public required long OtherEntries { get; init; }
    public required decimal LedgerSumUsd { get; init; }
    public required long UsageRows { get; init; }
    public required long UsageRowsWithCost { get; init; }
    public required decimal UsageCostUsd { get; init; }
    public required IReadOnlyList<ViolationRows> Violations { get; init; }
}

/// <summary>The read-only queries of the checker. Whole-table checks run in SQL; only violations come back.</summary>
internal sealed class PostgresMoneyReader(NpgsqlDataSource dataSource, int maxListed)
{
    public async Task<IReadOnlyList<LedgerUser>> ReadUsersAsync(CancellationToken ct)
    {
        var users = new List<LedgerUser>();
        await using var cmd = dataSource.CreateCommand("SELECT id, namespace, name, deleted_at IS NOT NULL FROM users ORDER BY namespace, name");
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) users.Add(new LedgerUser(r.GetGuid(0), r.GetString(1), r.GetString(2), r.GetBoolean(3)));
        return users;
    }

    /// <summary>PostgreSQL's own clock: usage_log.created_at is the ledger writer's transaction start on the same clock.</summary>
    public async Task<DateTime> ClockAsync(CancellationToken ct)
    {
        await using var cmd = dataSource.CreateCommand("SELECT clock_timestamp()");
        return (DateTime)(await cmd.ExecuteScalarAsync(ct))!;
    }

    public async Task<LedgerFacts> ReadAsync(DateTime snapshotStart, DateTime snapshotEnd, IReadOnlyList<string> streamIds, IReadOnlyList<string> reservationIds, CancellationToken ct)
    {
        await using var conn = await dataSource.OpenConnectionAsync(ct);
        // One snapshot for every query: the ledger writer commits usage rows and their consume entries together.
        await using var tx = await conn.BeginTransactionAsync(IsolationLevel.RepeatableRead, ct);
        await using (var ro = new NpgsqlCommand("SET TRANSACTION READ ONLY", conn, tx)) await ro.ExecuteNonQueryAsync(ct);

        var grants = new List<(Guid, string, decimal)>();
        await Each(conn, tx, "SELECT user_id, grant_id, amount FROM ledger_entries WHERE kind = 'grant'", [],
            r => grants.Add((r.GetGuid(0), r.GetString(1), r.GetDecimal(2))), ct);

        var t0 = new NpgsqlParameter("t0", NpgsqlDbType.TimestampTz) { Value = snapshotStart };
        var consumed = await SumsAsync(conn, tx, """
            SELECT l.user_id, count(*), coalesce(sum(l.amount), 0), coalesce(sum(floor(l.amount * 1000000)), 0)
            FROM ledger_entries l
            WHERE l.kind = 'consume'
              AND NOT EXISTS (SELECT 1 FROM usage_log u WHERE u.request_id = l.request_id AND u.created_at >= @t0)
            GROUP BY l.user_id
            """, t0, ct);
        var other = await SumsAsync(conn, tx, """
            SELECT user_id, count(*), coalesce(sum(amount), 0), coalesce(sum(floor(amount * 1000000)), 0)
            FROM ledger_entries WHERE kind NOT IN ('grant', 'consume') AND created_at < @t0
            GROUP BY user_id
            """, t0, ct);

        var late = new List<LateUsageRow>();
        await Each(conn, tx, "SELECT request_id, user_id, created_at < @t1 FROM usage_log WHERE created_at >= @t0 AND cost > 0",
            [Clone(t0), new NpgsqlParameter("t1", NpgsqlDbType.TimestampTz) { Value = snapshotEnd }],
            r => late.Add(new LateUsageRow(r.GetString(0), r.IsDBNull(1) ? null : r.GetGuid(1), r.GetBoolean(2))), ct);

        var persisted = new HashSet<string>(StringComparer.Ordinal);
        await Each(conn, tx, "SELECT request_id FROM usage_log WHERE request_id = ANY(@ids) AND created_at < @t0",
            [Ids(streamIds), Clone(t0)], r => persisted.Add(r.GetString(0)), ct);
        var charged = new HashSet<string>(StringComparer.Ordinal);
        // Before t0 only: a request whose reservation the snapshot saw open may settle and be persisted after it.
        await Each(conn, tx, "SELECT request_id FROM usage_log WHERE request_id = ANY(@ids) AND created_at < @t0",
            [Ids(reservationIds), Clone(t0)], r => charged.Add(r.GetString(0)), ct);

        long grantEntries = 0, consumeEntries = 0, otherEntries = 0;
        decimal ledgerSum = 0;
        await Each(conn, tx, """
            SELECT count(*) FILTER (WHERE kind = 'grant'), count(*) FILTER (WHERE kind = 'consume'),
                   count(*) FILTER (WHERE kind NOT IN ('grant', 'consume')), coalesce(sum(amount), 0)
            FROM ledger_entries
            """, [], r => (grantEntries, consumeEntries, otherEntries, ledgerSum) = (r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetDecimal(3)), ct);
        long usageRows = 0, usageWithCost = 0;
        decimal usageCost = 0;
        await Each(conn, tx, "SELECT count(*), count(*) FILTER (WHERE cost > 0), coalesce(sum(cost), 0) FROM usage_log", [],
            r => (usageRows, usageWithCost, usageCost) = (r.GetInt64(0), r.GetInt64(1), r.GetDecimal(2)), ct);

        var violations = new List<ViolationRows>
        {
            await ViolationsAsync(conn, tx, ViolationKinds.UsageWithoutConsume, """
                SELECT u.request_id, u.user_id, 'usage row of ' || u.cost || ' USD has no consume entry', count(*) OVER ()
                FROM usage_log u
                WHERE u.cost > 0 AND NOT EXISTS (SELECT 1 FROM ledger_entries l WHERE l.kind = 'consume' AND l.request_id = u.request_id)
                ORDER BY u.id LIMIT @max
                """, ct),
            await ViolationsAsync(conn, tx, ViolationKinds.ConsumeWithoutUsage, """
                SELECT l.request_id, l.user_id, 'consume entry of ' || l.amount || ' USD has no usage row', count(*) OVER ()
                FROM ledger_entries l
                WHERE l.kind = 'consume' AND NOT EXISTS (SELECT 1 FROM usage_log u WHERE u.request_id = l.request_id)
                ORDER BY l.id LIMIT @max
                """, ct),
            await ViolationsAsync(conn, tx, ViolationKinds.ConsumeMismatch, """
                SELECT l.request_id, l.user_id,
                       'consume entry ' || l.amount || ' USD of user ' || l.user_id || ' vs usage row cost ' || u.cost || ' USD of user ' || coalesce(u.user_id::text, 'none'),
                       count(*) OVER ()
                FROM ledger_entries l JOIN usage_log u ON u.request_id = l.request_id
                WHERE l.kind = 'consume' AND (l.amount <> -u.cost OR u.user_id IS DISTINCT FROM l.user_id)
                ORDER BY l.id LIMIT @max
                """, ct),
            // The unique constraints forbid these today; the checks stay so a schema change cannot hide them.
            await ViolationsAsync(conn, tx, ViolationKinds.DuplicateRequestId, """
                SELECT request_id, min(user_id::text)::uuid, 'usage_log holds the request ' || count(*) || ' times', count(*) OVER ()
                FROM usage_log GROUP BY request_id HAVING count(*) > 1
                ORDER BY request_id LIMIT @max
                """, ct),
            await ViolationsAsync(conn, tx, ViolationKinds.DuplicateRequestId, """
                SELECT request_id, min(user_id::text)::uuid, 'the ledger consumes the request ' || count(*) || ' times', count(*) OVER ()
                FROM ledger_entries WHERE kind = 'consume' GROUP BY request_id HAVING count(*) > 1
                ORDER BY request_id LIMIT @max
                """, ct),
            await ViolationsAsync(conn, tx, ViolationKinds.NegativeCost, """
                SELECT request_id, user_id, 'usage row cost is ' || cost || ' USD', count(*) OVER ()
                FROM usage_log WHERE cost < 0
                ORDER BY id LIMIT @max
                """, ct),
        };
        await tx.CommitAsync(ct);

        return new LedgerFacts
        {
            Grants = grants,
            Consumed = consumed,
            Other = other,
            LateRows = late,
            PersistedStreamIds = persisted,
            ChargedReservationIds = charged,
            GrantEntries = grantEntries,
            ConsumeEntries = consumeEntries,
            OtherEntries = otherEntries,
            LedgerSumUsd = ledgerSum,
            UsageRows = usageRows,
            UsageRowsWithCost = usageWithCost,
            UsageCostUsd = usageCost,
            Violations = violations,
        };
    }

    private static async Task<Dictionary<Guid, LedgerSum>> SumsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, NpgsqlParameter t0, CancellationToken ct)
    {
        var sums = new Dictionary<Guid, LedgerSum>();
        await Each(conn, tx, sql, [Clone(t0)], r => sums[r.GetGuid(0)] = new LedgerSum(r.GetInt64(1), r.GetDecimal(2), r.GetDecimal(3)), ct);
        return sums;
    }

    private async Task<ViolationRows> ViolationsAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string kind, string sql, CancellationToken ct)
    {
        var listed = new List<Violation>();
        long total = 0;
        await Each(conn, tx, sql, [new NpgsqlParameter("max", NpgsqlDbType.Integer) { Value = maxListed }], r =>
        {
            total = r.GetInt64(3);
            listed.Add(new Violation(kind, r.GetString(2)) { RequestId = r.GetString(0), UserId = r.IsDBNull(1) ? null : r.GetGuid(1).ToString() });
        }, ct);
        return new ViolationRows(kind, total, listed);
    }

    private static async Task Each(NpgsqlConnection conn, NpgsqlTransaction tx, string sql, NpgsqlParameter[] parameters, Action<NpgsqlDataReader> row, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, conn, tx);
        cmd.Parameters.AddRange(parameters);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) row(r);
    }

    private static NpgsqlParameter Clone(NpgsqlParameter p) => new(p.ParameterName, p.NpgsqlDbType) { Value = p.Value };

    private static NpgsqlParameter Ids(IReadOnlyList<string> ids) =>
        new("ids", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = ids.ToArray() };
}
