using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>The initial schema. Hand-written SQL: the EF design-time tools do not restore here.</summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261121000001_Initial")]
public sealed class M0001_Initial : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            CREATE TABLE users (
                id uuid PRIMARY KEY,
                namespace text NOT NULL,
                name text NOT NULL,
                login text NOT NULL,
                email text NOT NULL,
                display_name text,
                password_hash text,
                totp_secret_protected text,
                totp_last_step bigint,
                enrollment text NOT NULL DEFAULT 'Invited' CHECK (enrollment IN ('Invited', 'Enrolled')),
                invite_token_hash text,
                invite_expires_at timestamptz,
                suspended boolean NOT NULL DEFAULT false,
                spec jsonb NOT NULL DEFAULT '{}',
                generation bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                deleted_at timestamptz,
                CONSTRAINT users_namespace_name_key UNIQUE (namespace, name)
            );
            CREATE UNIQUE INDEX users_invite_token_hash_key ON users (invite_token_hash) WHERE invite_token_hash IS NOT NULL;

            CREATE TABLE api_keys (
                id uuid PRIMARY KEY,
                namespace text NOT NULL,
                name text NOT NULL,
                user_id uuid NOT NULL REFERENCES users (id),
                description text,
                current_version integer NOT NULL DEFAULT 0,
                key_prefix text,
                disabled boolean NOT NULL DEFAULT false,
                expires_at timestamptz,
                last_rotate_request text,
                spec jsonb NOT NULL DEFAULT '{}',
                generation bigint NOT NULL DEFAULT 0,
                last_used_at timestamptz,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                deleted_at timestamptz,
                CONSTRAINT api_keys_namespace_name_key UNIQUE (namespace, name)
            );
            CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

            CREATE TABLE api_key_versions (
                id bigserial PRIMARY KEY,
                api_key_id uuid NOT NULL REFERENCES api_keys (id),
                version integer NOT NULL,
                key_hash char(64) NOT NULL,
                key_prefix text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz,
                revoked_at timestamptz,
                CONSTRAINT api_key_versions_key_hash_key UNIQUE (key_hash),
                CONSTRAINT api_key_versions_api_key_id_version_key UNIQUE (api_key_id, version)
            );

            CREATE TABLE upstream_accounts (
                id uuid PRIMARY KEY,
                namespace text NOT NULL,
                name text NOT NULL,
                provider text NOT NULL,
                base_url text NOT NULL,
                priority integer NOT NULL DEFAULT 0,
                weight integer NOT NULL DEFAULT 1,
                disabled boolean NOT NULL DEFAULT false,
                spec jsonb NOT NULL DEFAULT '{}',
                generation bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                deleted_at timestamptz,
                CONSTRAINT upstream_accounts_namespace_name_key UNIQUE (namespace, name)
            );

            CREATE TABLE ledger_entries (
                id bigserial PRIMARY KEY,
                user_id uuid NOT NULL REFERENCES users (id),
                kind text NOT NULL CHECK (kind IN ('grant', 'consume', 'refund', 'adjust', 'expire')),
                amount numeric(20,8) NOT NULL,
                grant_id text,
                request_id text,
                api_key_id uuid,
                price_version text,
                reason text,
                created_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT ledger_grant_has_id CHECK (kind <> 'grant' OR grant_id IS NOT NULL),
                CONSTRAINT ledger_consume_has_request CHECK (kind <> 'consume' OR request_id IS NOT NULL)
            );
            -- A grant id credits a user exactly once, ever; a request is consumed exactly once.
            CREATE UNIQUE INDEX ledger_entries_grant_key ON ledger_entries (user_id, grant_id) WHERE kind = 'grant';
            CREATE UNIQUE INDEX ledger_entries_consume_key ON ledger_entries (request_id) WHERE kind = 'consume';
            CREATE INDEX ledger_entries_user_idx ON ledger_entries (user_id, created_at);

            -- The ledger is append-only.
            CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'ledger_entries is append-only: % is not allowed', TG_OP;
            END $$;
            CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
                FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

            CREATE TABLE usage_log (
                id bigserial PRIMARY KEY,
                request_id text NOT NULL,
                api_key_id uuid,
                key_version integer NOT NULL DEFAULT 0,
                user_id uuid,
                upstream text NOT NULL DEFAULT '',
                model text NOT NULL DEFAULT '',
                route text NOT NULL DEFAULT '',
                input_tokens bigint NOT NULL DEFAULT 0,
                cached_input_tokens bigint NOT NULL DEFAULT 0,
                cache_write_tokens bigint NOT NULL DEFAULT 0,
                output_tokens bigint NOT NULL DEFAULT 0,
                cost numeric(20,8) NOT NULL DEFAULT 0,
                price_version text NOT NULL DEFAULT '',
                started_at timestamptz NOT NULL,
                duration_ms integer NOT NULL DEFAULT 0,
                ttfb_ms integer,
                status integer NOT NULL DEFAULT 0,
                estimated boolean NOT NULL DEFAULT false,
                streamed boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL DEFAULT now(),
                CONSTRAINT usage_log_request_id_key UNIQUE (request_id)
            );
            CREATE INDEX usage_log_user_started_idx ON usage_log (user_id, started_at);
            CREATE INDEX usage_log_key_started_idx ON usage_log (api_key_id, started_at);
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP TABLE usage_log; DROP TRIGGER ledger_entries_no_update ON ledger_entries;
            DROP FUNCTION ledger_entries_append_only(); DROP TABLE ledger_entries; DROP TABLE upstream_accounts;
            DROP TABLE api_key_versions; DROP TABLE api_keys; DROP TABLE users;
            """);
    }
}
