using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// Portal sign-in: roles and lockout on users, recovery codes, server-side sessions, sign-in history,
/// an append-only audit log, used invites and the data-protection key ring shared by portal replicas.
/// </summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261207000002_PortalAuth")]
public sealed class M0002_PortalAuth : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            ALTER TABLE users
                ADD COLUMN portal_role text NOT NULL DEFAULT 'user' CHECK (portal_role IN ('user', 'admin')),
                ADD COLUMN failed_signins integer NOT NULL DEFAULT 0,
                ADD COLUMN locked_until timestamptz;
            -- Sign-in accepts the login or the e-mail address, case-insensitively.
            CREATE INDEX users_lower_login_idx ON users (lower(login)) WHERE deleted_at IS NULL;
            CREATE INDEX users_lower_email_idx ON users (lower(email)) WHERE deleted_at IS NULL;

            CREATE TABLE recovery_codes (
                id bigserial PRIMARY KEY,
                user_id uuid NOT NULL REFERENCES users (id),
                code_hash char(64) NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                used_at timestamptz
            );
            CREATE INDEX recovery_codes_user_idx ON recovery_codes (user_id, code_hash);

            -- A used invite is remembered (by hash) so its link can say it was used.
            CREATE TABLE used_invites (
                token_hash char(64) PRIMARY KEY,
                user_id uuid NOT NULL REFERENCES users (id),
                used_at timestamptz NOT NULL DEFAULT now()
            );

            -- Only the SHA-256 of the session token is stored; the token lives in the encrypted cookie.
            CREATE TABLE portal_sessions (
                id uuid PRIMARY KEY,
                token_hash char(64) NOT NULL,
                user_id uuid NOT NULL REFERENCES users (id),
                user_agent text NOT NULL DEFAULT '',
                ip text NOT NULL DEFAULT '',
                created_at timestamptz NOT NULL,
                last_seen_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                revoked_at timestamptz,
                CONSTRAINT portal_sessions_token_hash_key UNIQUE (token_hash)
            );
            CREATE INDEX portal_sessions_user_idx ON portal_sessions (user_id, created_at);

            CREATE TABLE signin_events (
                id bigserial PRIMARY KEY,
                user_id uuid REFERENCES users (id),
                created_at timestamptz NOT NULL,
                ip text NOT NULL DEFAULT '',
                user_agent text NOT NULL DEFAULT '',
                result text NOT NULL
            );
            CREATE INDEX signin_events_user_idx ON signin_events (user_id, created_at);

            CREATE TABLE audit_log (
                id bigserial PRIMARY KEY,
                user_id uuid REFERENCES users (id),
                action text NOT NULL,
                detail text,
                ip text,
                user_agent text,
                created_at timestamptz NOT NULL
            );
            CREATE INDEX audit_log_user_idx ON audit_log (user_id, created_at);
            CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP;
            END $$;
            CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
                FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

            CREATE TABLE dataprotection_keys (
                id serial PRIMARY KEY,
                friendly_name text NOT NULL,
                xml text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT dataprotection_keys_friendly_name_key UNIQUE (friendly_name)
            );
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP TABLE dataprotection_keys; DROP TRIGGER audit_log_no_update ON audit_log;
            DROP FUNCTION audit_log_append_only(); DROP TABLE audit_log; DROP TABLE signin_events;
            DROP TABLE portal_sessions; DROP TABLE used_invites; DROP TABLE recovery_codes;
            DROP INDEX users_lower_email_idx; DROP INDEX users_lower_login_idx;
            ALTER TABLE users DROP COLUMN locked_until, DROP COLUMN failed_signins, DROP COLUMN portal_role;
            """);
    }
}
