using System.Diagnostics;
using System.Globalization;
using Gateway.Core.Storage;
using Gateway.Core.Storage.Migrations;
using Npgsql;

namespace Gateway.Benchmarks.Portal;

/// <summary>
/// Fills a database of its own with the portal benchmark's data in SQL (generate_series, no client round trip
/// per row): users with keys and a grant, usage rows over the last 90 days (one user holding
/// <see cref="PortalBenchSize.BigUserRows"/> of them), a consume ledger entry per charged row, then the roll-ups
/// built by the migration's own backfill. Rows are written in chunks so progress shows on a slow machine.
/// </summary>
public static class PortalDataGenerator
{
    public static Guid UserId(int n) => GuidFromMd5("bench-user-" + n.ToString(CultureInfo.InvariantCulture));

    private static Guid GuidFromMd5(string text)
    {
        var hex = Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        return Guid.ParseExact(hex, "N");
    }

    /// <summary>True when the database already holds data of this size (a previous run), so it is reused.</summary>
    public static async Task<bool> IsCompleteAsync(NpgsqlDataSource db, PortalBenchSize size)
    {
        try
        {
            await using var cmd = db.CreateCommand("SELECT rows, users, big FROM bench_meta WHERE complete");
            await using var r = await cmd.ExecuteReaderAsync();
            return await r.ReadAsync() && r.GetInt64(0) == size.Rows && r.GetInt32(1) == size.Users && r.GetInt64(2) == size.BigUserRows;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return false;
        }
    }

    public static async Task GenerateAsync(string connectionString, NpgsqlDataSource db, PortalBenchSize size, TextWriter log)
    {
        await StorageServiceCollectionExtensions.MigrateAsync(connectionString);
        var total = Stopwatch.StartNew();
        await StepAsync(db, log, "users, keys and grants", $$$"""
            INSERT INTO users (id, namespace, name, login, email, enrollment, spec)
            SELECT md5('bench-user-' || g)::uuid, 'bench', 'user-' || g, 'user-' || g, 'user-' || g || '@example.com', 'Enrolled',
                '{"budget":{"amount":500,"period":"monthly","timezone":"Europe/Berlin"},"limits":{"requestsPerDay":100000,"tokensPerDay":100000000,"requestsPerMinute":600}}'
            FROM generate_series(1, {{{size.Users}}}) g;
            INSERT INTO api_keys (id, namespace, name, user_id, key_prefix, last_used_at)
            SELECT md5('bench-key-' || g || '-' || k)::uuid, 'bench', 'user-' || g || '-key-' || k, md5('bench-user-' || g)::uuid,
                'tg-' || substr(md5(g || '-' || k), 1, 6), now()
            FROM generate_series(1, {{{size.Users}}}) g, generate_series(1, CASE WHEN g = 1 THEN 5 ELSE 2 END) k;
            INSERT INTO ledger_entries (user_id, kind, amount, grant_id, reason, created_at)
            SELECT md5('bench-user-' || g)::uuid, 'grant', 1000, 'welcome', 'Benchmark credit', now() - interval '91 days'
            FROM generate_series(1, {{{size.Users}}}) g;
            CREATE TABLE IF NOT EXISTS bench_meta (rows bigint, users int, big bigint, complete boolean);
            """);

        // Row g: the big user (user 1) owns g <= big; the rest go round the other users. Time rises with g within
        // each group, over the last 90 days, as a ledger writer would have inserted them.
        const long chunk = 1_000_000;
        for (long from = 1; from <= size.Rows; from += chunk)
        {
            var to = Math.Min(size.Rows, from + chunk - 1);
            await StepAsync(db, log, $"usage_log rows {from:N0}–{to:N0}", $"""
                INSERT INTO usage_log (request_id, api_key_id, key_version, user_id, upstream, model, route, input_tokens,
                    cached_input_tokens, cache_write_tokens, output_tokens, cost, price_version, started_at, duration_ms, ttfb_ms,
                    status, estimated, streamed, client_ip, error_code)
                SELECT 'bench-' || lpad(g::text, 10, '0'),
                    md5('bench-key-' || u || '-' || (1 + g % CASE WHEN u = 1 THEN 5 ELSE 2 END))::uuid, 1, md5('bench-user-' || u)::uuid,
                    (ARRAY['default/openai-a', 'default/openai-b', 'default/anthropic'])[1 + g % 3],
                    (ARRAY['gpt-4o-mini', 'gpt-4o', 'claude-sonnet-4', 'gpt-4.1', 'o3-mini'])[1 + (g / 7) % 5],
                    '/v1/chat/completions', 200 + g % 1800, (g % 5) * 100, 0, 50 + g % 700,
                    round(((200 + g % 1800) * 0.15 + (50 + g % 700) * 0.6) / 1000000.0, 8), '2026-11-01',
                    now() - interval '90 days' + frac * interval '90 days', 100 + g % 4000, 50 + g % 400,
                    st, false, g % 2 = 0, '198.51.100.' || (g % 250),
                    CASE st WHEN 429 THEN 'rate_limit_exceeded' WHEN 502 THEN 'upstream_error' END
                FROM (
                    SELECT g,
                        CASE WHEN g <= {size.BigUserRows} THEN 1 ELSE 2 + (g % ({size.Users} - 1)) END AS u,
                        CASE WHEN g <= {size.BigUserRows} THEN g::float8 / {size.BigUserRows}
                             ELSE (g - {size.BigUserRows})::float8 / ({size.Rows} - {size.BigUserRows} + 1) END AS frac,
                        CASE WHEN g % 50 = 0 THEN 429 WHEN g % 97 = 0 THEN 502 ELSE 200 END AS st
                    FROM generate_series({from}, {to}) g) s;
                INSERT INTO ledger_entries (user_id, kind, amount, request_id, api_key_id, price_version, created_at)
                SELECT user_id, 'consume', -cost, request_id, api_key_id, price_version, started_at
                FROM usage_log WHERE request_id >= 'bench-' || lpad('{from}', 10, '0') AND request_id <= 'bench-' || lpad('{to}', 10, '0') AND cost > 0;
                """);
        }
        await StepAsync(db, log, "roll-ups (the migration's backfill)", "TRUNCATE usage_daily, ledger_daily, usage_daily_by_model, usage_daily_by_user;\n" + M0003_UsageDetail.BackfillSql + M0006_AdminRollups.BackfillSql);
        await StepAsync(db, log, "vacuum analyze", """
            VACUUM ANALYZE users;
            VACUUM ANALYZE api_keys;
            VACUUM ANALYZE usage_log;
            VACUUM ANALYZE ledger_entries;
            VACUUM ANALYZE usage_daily;
            VACUUM ANALYZE ledger_daily;
            VACUUM ANALYZE usage_daily_by_model;
            VACUUM ANALYZE usage_daily_by_user;
            """);
        await StepAsync(db, log, "mark complete", $"DELETE FROM bench_meta;\nINSERT INTO bench_meta VALUES ({size.Rows}, {size.Users}, {size.BigUserRows}, true);");
        await log.WriteLineAsync($"data generated in {total.Elapsed.TotalMinutes:F1} min");
    }

    private static async Task StepAsync(NpgsqlDataSource db, TextWriter log, string what, string sql)
    {
        var sw = Stopwatch.StartNew();
        await using var conn = await db.OpenConnectionAsync();
        // VACUUM cannot run inside a transaction block, so each statement runs on its own.
        foreach (var statement in System.Text.RegularExpressions.Regex.Split(sql, @";[ \t]*\r?\n"))
        {
            var text = statement.Trim().TrimEnd(';');
            if (text.Length == 0) continue;
            await using var cmd = new NpgsqlCommand(text, conn) { CommandTimeout = 0 };
            await cmd.ExecuteNonQueryAsync();
        }
        await log.WriteLineAsync($"  {what}: {sw.Elapsed.TotalSeconds:F1} s");
    }
}

/// <summary>The benchmark's data size (defaults: the issue's 10 million rows, 10,000 users, one with 1 million).</summary>
public sealed record PortalBenchSize(long Rows, int Users, long BigUserRows);
