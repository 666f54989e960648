using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// What the admin overview needs without scanning every user's rows: usage summed per UTC day across all users,
/// by model (<c>usage_daily_by_model</c>) and by user (<c>usage_daily_by_user</c>), maintained by the ledger writer
/// in the same statement as the rows they sum (see Usage/UsageLedgerBatch); and, per upstream account, when its
/// OAuth access token expires and the last error the operator saw, written by the operator's reconciler.
/// Existing roll-up rows are backfilled from <c>usage_daily</c>.
/// </summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261207000006_AdminRollups")]
public sealed class M0006_AdminRollups : Migration
{
    /// <summary>Builds both roll-ups from usage_daily (they must be empty); tests and the portal benchmark reuse it.</summary>
    public const string BackfillSql = """
            INSERT INTO usage_daily_by_model (day, model, requests, tokens, cost)
            SELECT day, model, sum(requests), sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), sum(cost)
            FROM usage_daily GROUP BY day, model;

            INSERT INTO usage_daily_by_user (day, user_id, requests, tokens, cost)
            SELECT day, user_id, sum(requests), sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), sum(cost)
            FROM usage_daily GROUP BY day, user_id;
        """;

    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql($"""
            -- Tokens are the sum of every kind (input, cached input, cache write, output).
            CREATE TABLE usage_daily_by_model (
                day date NOT NULL,
                model text NOT NULL,
                requests bigint NOT NULL,
                tokens bigint NOT NULL,
                cost numeric(20,8) NOT NULL,
                PRIMARY KEY (day, model)
            );
            -- user_id is null for requests of a user the ledger did not know, as in usage_daily.
            CREATE TABLE usage_daily_by_user (
                day date NOT NULL,
                user_id uuid,
                requests bigint NOT NULL,
                tokens bigint NOT NULL,
                cost numeric(20,8) NOT NULL,
                CONSTRAINT usage_daily_by_user_key UNIQUE NULLS NOT DISTINCT (day, user_id)
            );

            ALTER TABLE upstream_accounts ADD COLUMN token_expires_at timestamptz, ADD COLUMN last_error text;

            {BackfillSql}
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            ALTER TABLE upstream_accounts DROP COLUMN token_expires_at, DROP COLUMN last_error;
            DROP TABLE usage_daily_by_user;
            DROP TABLE usage_daily_by_model;
            """);
    }
}
