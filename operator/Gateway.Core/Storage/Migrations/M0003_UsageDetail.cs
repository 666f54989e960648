using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// Usage detail for the portal: the client IP and error code of each request, indexes for the usage table's
/// keyset pagination and filters, and daily roll-ups (usage by user/key/model/upstream, consumption per user)
/// that the ledger writer maintains in the same transaction as the rows they sum. Existing rows are backfilled.
/// </summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261207000003_UsageDetail")]
public sealed class M0003_UsageDetail : Migration
{
    /// <summary>
    /// The SQL predicate of a failed request: anything but a 2xx/3xx answer (0 = an orphaned reservation).
    /// Queries must use this exact text so the planner matches the partial index below.
    /// </summary>
    public const string FailedPredicate = "NOT (status BETWEEN 200 AND 399)";

    /// <summary>Builds both roll-ups from the detail rows (they must be empty); the portal benchmark reuses it after bulk loading.</summary>
    public const string BackfillSql = $"""
            INSERT INTO usage_daily (user_id, day, api_key_id, model, upstream, streamed, failed, requests, errors,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost)
            SELECT user_id, (started_at AT TIME ZONE 'UTC')::date, api_key_id, model, upstream, streamed, {FailedPredicate},
                count(*), CASE WHEN {FailedPredicate} THEN count(*) ELSE 0 END,
                sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), sum(cost)
            FROM usage_log
            GROUP BY user_id, (started_at AT TIME ZONE 'UTC')::date, api_key_id, model, upstream, streamed, {FailedPredicate};

            INSERT INTO ledger_daily (user_id, day, amount, entries, last_at)
            SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, sum(amount), count(*), max(created_at)
            FROM ledger_entries WHERE kind = 'consume'
            GROUP BY user_id, (created_at AT TIME ZONE 'UTC')::date;
        """;

    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql($"""
            ALTER TABLE usage_log ADD COLUMN client_ip text, ADD COLUMN error_code text;

            -- Keyset pagination of one user's rows, newest first, with id as the tie-break; the old
            -- (user_id, started_at) index is a prefix of it.
            CREATE INDEX usage_log_user_started_id_idx ON usage_log (user_id, started_at, id);
            DROP INDEX usage_log_user_started_idx;
            -- The usage table's model filter, and its status filter (failures are rare: a small partial index).
            CREATE INDEX usage_log_user_model_started_idx ON usage_log (user_id, model, started_at, id);
            CREATE INDEX usage_log_user_failed_idx ON usage_log (user_id, started_at, id) WHERE {FailedPredicate};

            -- Usage summed per UTC day. user_id/api_key_id may be null (a key or user the ledger did not know),
            -- hence NULLS NOT DISTINCT. streamed and failed are part of the key so the usage table's totals for
            -- any filter (date range, key, model, status, streamed) come from here. errors = requests on failed rows.
            CREATE TABLE usage_daily (
                user_id uuid,
                day date NOT NULL,
                api_key_id uuid,
                model text NOT NULL,
                upstream text NOT NULL,
                streamed boolean NOT NULL,
                failed boolean NOT NULL,
                requests bigint NOT NULL,
                errors bigint NOT NULL,
                input_tokens bigint NOT NULL,
                cached_input_tokens bigint NOT NULL,
                cache_write_tokens bigint NOT NULL,
                output_tokens bigint NOT NULL,
                cost numeric(20,8) NOT NULL,
                CONSTRAINT usage_daily_key UNIQUE NULLS NOT DISTINCT (user_id, day, api_key_id, model, upstream, streamed, failed)
            );
            CREATE INDEX usage_daily_day_idx ON usage_daily (day);

            -- Consume entries of the ledger summed per user and UTC day (amount is negative, as in the ledger).
            -- Balance = Σ ledger_daily.amount + Σ of the user's other ledger entries, read through the partial index.
            CREATE TABLE ledger_daily (
                user_id uuid NOT NULL,
                day date NOT NULL,
                amount numeric(20,8) NOT NULL,
                entries bigint NOT NULL,
                last_at timestamptz NOT NULL,
                PRIMARY KEY (user_id, day)
            );
            CREATE INDEX ledger_entries_user_not_consume_idx ON ledger_entries (user_id, created_at) WHERE kind <> 'consume';

            {BackfillSql}
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP INDEX ledger_entries_user_not_consume_idx; DROP TABLE ledger_daily; DROP TABLE usage_daily;
            DROP INDEX usage_log_user_failed_idx; DROP INDEX usage_log_user_model_started_idx;
            CREATE INDEX usage_log_user_started_idx ON usage_log (user_id, started_at);
            DROP INDEX usage_log_user_started_id_idx;
            ALTER TABLE usage_log DROP COLUMN client_ip, DROP COLUMN error_code;
            """);
    }
}
