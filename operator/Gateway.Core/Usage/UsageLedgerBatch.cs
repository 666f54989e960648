using Npgsql;
using NpgsqlTypes;

namespace Gateway.Core.Usage;

/// <summary>
/// Persists a batch of usage events in one transaction: the <c>usage_log</c> rows, their consume ledger
/// entries, the keys' last use and the daily roll-ups (<c>usage_daily</c>, <c>ledger_daily</c>, and the admin
/// overview's <c>usage_daily_by_model</c> and <c>usage_daily_by_user</c>). The ledger
/// writer calls it for each batch it reads from the stream; tests and the portal benchmark call it to produce
/// data exactly as production does. Idempotent on request_id.
/// </summary>
public static class UsageLedgerBatch
{
    /// <summary>
    /// One statement per batch: the usage rows, their consume entries, the keys' last use, and the daily
    /// roll-ups. The roll-ups add only what <c>ins</c> and <c>led</c> return — the rows this statement really
    /// inserted — so a redelivered event (a conflict, nothing returned) is never counted twice, and they
    /// commit or roll back with the rows they sum. Groups are upserted in key order so two concurrent
    /// writers lock roll-up rows in the same order (no deadlock).
    /// </summary>
    private const string PersistSql = $"""
        WITH ins AS (
            INSERT INTO usage_log (request_id, api_key_id, key_version, user_id, upstream, model, route,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost, price_version,
                started_at, duration_ms, ttfb_ms, status, estimated, streamed, client_ip, error_code)
            SELECT * FROM unnest(@req, @key, @kver, @user, @up, @model, @route, @tin, @tcached, @tcw, @tout,
                @cost, @pv, @started, @dur, @ttfb, @status, @est, @streamed, @ip, @err)
            ON CONFLICT (request_id) DO NOTHING
            RETURNING request_id, user_id, api_key_id, upstream, model, input_tokens, cached_input_tokens,
                cache_write_tokens, output_tokens, cost, price_version, started_at, status, streamed
        ), led AS (
            INSERT INTO ledger_entries (user_id, kind, amount, request_id, api_key_id, price_version, created_at)
            SELECT ins.user_id, 'consume', -ins.cost, ins.request_id, ins.api_key_id, ins.price_version, ins.started_at
            FROM ins JOIN users ON users.id = ins.user_id
            WHERE ins.cost > 0
            ON CONFLICT (request_id) WHERE kind = 'consume' DO NOTHING
            RETURNING user_id, amount, created_at
        ), touched AS (
            UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, t.last)
            FROM (SELECT api_key_id, max(started_at) AS last FROM ins WHERE api_key_id IS NOT NULL GROUP BY api_key_id) t
            WHERE api_keys.id = t.api_key_id
            RETURNING 1
        ), daily AS (
            INSERT INTO usage_daily AS d (user_id, day, api_key_id, model, upstream, streamed, failed, requests, errors,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost)
            SELECT user_id, (started_at AT TIME ZONE 'UTC')::date, api_key_id, model, upstream, streamed, {FailedPredicate},
                count(*), CASE WHEN {FailedPredicate} THEN count(*) ELSE 0 END,
                sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), sum(cost)
            FROM ins
            GROUP BY 1, 2, 3, 4, 5, 6, 7
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
                requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,
                input_tokens = d.input_tokens + EXCLUDED.input_tokens,
                cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
                cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
                output_tokens = d.output_tokens + EXCLUDED.output_tokens, cost = d.cost + EXCLUDED.cost
            RETURNING 1
        ), by_model AS (
            INSERT INTO usage_daily_by_model AS m (day, model, requests, tokens, cost)
            SELECT (started_at AT TIME ZONE 'UTC')::date, model, count(*),
                sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), sum(cost)
            FROM ins GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (day, model) DO UPDATE SET requests = m.requests + EXCLUDED.requests,
                tokens = m.tokens + EXCLUDED.tokens, cost = m.cost + EXCLUDED.cost
            RETURNING 1
        ), by_user AS (
            INSERT INTO usage_daily_by_user AS b (day, user_id, requests, tokens, cost)
            SELECT (started_at AT TIME ZONE 'UTC')::date, user_id, count(*),
                sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), sum(cost)
            FROM ins GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT ON CONSTRAINT usage_daily_by_user_key DO UPDATE SET requests = b.requests + EXCLUDED.requests,
                tokens = b.tokens + EXCLUDED.tokens, cost = b.cost + EXCLUDED.cost
            RETURNING 1
        ), consumed AS (
            INSERT INTO ledger_daily AS l (user_id, day, amount, entries, last_at)
            SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, sum(amount), count(*), max(created_at)
            FROM led GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (user_id, day) DO UPDATE SET amount = l.amount + EXCLUDED.amount,
                entries = l.entries + EXCLUDED.entries, last_at = GREATEST(l.last_at, EXCLUDED.last_at)
            RETURNING 1
        )
        SELECT count(*), coalesce(array_agg(request_id) FILTER (WHERE request_id = ANY(@recharged)), ARRAY[]::text[]) FROM ins
        """;

    private const string FailedPredicate = Gateway.Core.Storage.Migrations.M0003_UsageDetail.FailedPredicate;

    /// <summary>Writes <paramref name="events"/>; returns how many were new (the rest were already recorded).</summary>
    public static async Task<int> WriteAsync(NpgsqlDataSource dataSource, IReadOnlyList<UsageEvent> events, CancellationToken ct = default) =>
        (await WriteWithRechargesAsync(dataSource, events, ct)).Inserted;

    /// <summary>Like <see cref="WriteAsync"/>, and also says which recharged events (<see cref="UsageEvent.RechargeId"/>) were
    /// new: a recharge whose request id was already recorded duplicated it and must be refunded (see the ledger writer).</summary>
    public static async Task<(int Inserted, IReadOnlySet<string> InsertedRecharges)> WriteWithRechargesAsync(NpgsqlDataSource dataSource,
        IReadOnlyList<UsageEvent> events, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        ArgumentNullException.ThrowIfNull(events);
        if (events.Count == 0) return (0, new HashSet<string>());

        var n = events.Count;
        var req = new string[n]; var key = new Guid?[n]; var kver = new int[n]; var user = new Guid?[n];
        var up = new string[n]; var model = new string[n]; var route = new string[n];
        var tin = new long[n]; var tcached = new long[n]; var tcw = new long[n]; var tout = new long[n];
        var cost = new decimal[n]; var pv = new string[n]; var started = new DateTime[n];
        var dur = new int[n]; var ttfb = new int?[n]; var status = new int[n]; var est = new bool[n]; var streamed = new bool[n];
        var ip = new string?[n]; var err = new string?[n];
        var recharged = new List<string>();
        for (var i = 0; i < n; i++)
        {
            var e = events[i];
            req[i] = e.RequestId; key[i] = Guid.TryParse(e.KeyId, out var k) ? k : null; kver[i] = e.KeyVersion;
            user[i] = Guid.TryParse(e.UserId, out var u) ? u : null; up[i] = e.Upstream; model[i] = e.Model; route[i] = e.Route;
            tin[i] = e.Tokens.Input; tcached[i] = e.Tokens.CachedInput; tcw[i] = e.Tokens.CacheWrite; tout[i] = e.Tokens.Output;
            cost[i] = e.Cost; pv[i] = e.PriceVersion; started[i] = e.StartedAt.UtcDateTime; dur[i] = e.DurationMs;
            ttfb[i] = e.TimeToFirstByteMs; status[i] = e.Status; est[i] = e.Estimated; streamed[i] = e.Streamed;
            ip[i] = e.ClientIp.Length == 0 ? null : e.ClientIp; err[i] = e.ErrorCode.Length == 0 ? null : e.ErrorCode;
            if (e.RechargeId.Length > 0) recharged.Add(e.RequestId);
        }

        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand(PersistSql, conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter("req", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = req });
        cmd.Parameters.Add(new NpgsqlParameter("key", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = key });
        cmd.Parameters.Add(new NpgsqlParameter("kver", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = kver });
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = user });
        cmd.Parameters.Add(new NpgsqlParameter("up", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = up });
        cmd.Parameters.Add(new NpgsqlParameter("model", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = model });
        cmd.Parameters.Add(new NpgsqlParameter("route", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = route });
        cmd.Parameters.Add(new NpgsqlParameter("tin", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tin });
        cmd.Parameters.Add(new NpgsqlParameter("tcached", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tcached });
        cmd.Parameters.Add(new NpgsqlParameter("tcw", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tcw });
        cmd.Parameters.Add(new NpgsqlParameter("tout", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tout });
        cmd.Parameters.Add(new NpgsqlParameter("cost", NpgsqlDbType.Array | NpgsqlDbType.Numeric) { Value = cost });
        cmd.Parameters.Add(new NpgsqlParameter("pv", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = pv });
        cmd.Parameters.Add(new NpgsqlParameter("started", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = started });
        cmd.Parameters.Add(new NpgsqlParameter("dur", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = dur });
        cmd.Parameters.Add(new NpgsqlParameter("ttfb", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = ttfb });
        cmd.Parameters.Add(new NpgsqlParameter("status", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = status });
        cmd.Parameters.Add(new NpgsqlParameter("est", NpgsqlDbType.Array | NpgsqlDbType.Boolean) { Value = est });
        cmd.Parameters.Add(new NpgsqlParameter("streamed", NpgsqlDbType.Array | NpgsqlDbType.Boolean) { Value = streamed });
        cmd.Parameters.Add(new NpgsqlParameter("ip", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = ip });
        cmd.Parameters.Add(new NpgsqlParameter("err", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = err });
        cmd.Parameters.Add(new NpgsqlParameter("recharged", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = recharged.ToArray() });
        // Prepared once per physical connection (Npgsql keeps it across pool rentals): planning this
        // statement cost PostgreSQL more than inserting a small batch.
        await cmd.PrepareAsync(ct);
        int inserted;
        var insertedRecharges = new HashSet<string>(StringComparer.Ordinal);
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            inserted = Convert.ToInt32(reader.GetInt64(0), System.Globalization.CultureInfo.InvariantCulture);
            foreach (var id in reader.GetFieldValue<string[]>(1)) insertedRecharges.Add(id);
        }
        await tx.CommitAsync(ct);
        return (inserted, insertedRecharges);
    }
}
