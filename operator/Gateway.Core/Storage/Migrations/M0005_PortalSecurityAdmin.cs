using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// Indexes for the portal's admin overview: usage_log by time (health and spend windows across all users),
/// failed requests newest first, and ledger sums per user (balance and period spend) as index-only scans.
/// </summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261207000005_PortalSecurityAdmin")]
public sealed class M0005_PortalSecurityAdmin : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            CREATE INDEX IF NOT EXISTS usage_log_started_idx ON usage_log (started_at);
            CREATE INDEX IF NOT EXISTS usage_log_failed_idx ON usage_log (started_at DESC, id DESC) WHERE status >= 400;
            CREATE INDEX IF NOT EXISTS ledger_entries_user_kind_idx ON ledger_entries (user_id, kind, created_at) INCLUDE (amount);
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP INDEX IF EXISTS ledger_entries_user_kind_idx;
            DROP INDEX IF EXISTS usage_log_failed_idx;
            DROP INDEX IF EXISTS usage_log_started_idx;
            """);
    }
}
