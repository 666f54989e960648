using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// Indexes for the portal's admin overview: usage_log by time (health and spend windows across all users),
/// failed requests newest first, one user's use by client IP, and ledger sums per user (balance and period spend)
/// as index-only scans.
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
            -- The Security page's API use by source IP: one user's last 30 days as an index-only scan.
            CREATE INDEX IF NOT EXISTS usage_log_user_ip_idx ON usage_log (user_id, started_at)
                INCLUDE (client_ip, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens);
            CREATE INDEX IF NOT EXISTS ledger_entries_user_kind_idx ON ledger_entries (user_id, kind, created_at) INCLUDE (amount);
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP INDEX IF EXISTS ledger_entries_user_kind_idx;
            DROP INDEX IF EXISTS usage_log_user_ip_idx;
            DROP INDEX IF EXISTS usage_log_failed_idx;
            DROP INDEX IF EXISTS usage_log_started_idx;
            """);
    }
}
