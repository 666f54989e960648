using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

namespace Gateway.Core.Storage.Migrations;

/// <summary>
/// Portal key requests (create, rotate, disable, enable, delete) that the operator carries out, and the
/// one-time reveals of the keys it issues for them (ciphertext only, encrypted to the requester's key).
/// </summary>
[DbContext(typeof(TokenGateDbContext))]
[Migration("20261207000004_KeyRequests")]
public sealed class M0004_KeyRequests : Migration
{
    protected override void Up(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            -- portal_created mirrors the tokengate.io/created-by=portal label (only those keys may be deleted from
            -- the portal); user_disabled is the owner's own switch for keys declared in GitOps, whose spec the
            -- portal must not edit: the operator's projection honours it as it honours spec.disabled.
            ALTER TABLE api_keys
                ADD COLUMN portal_created boolean NOT NULL DEFAULT false,
                ADD COLUMN user_disabled boolean NOT NULL DEFAULT false;

            CREATE TABLE key_requests (
                id uuid PRIMARY KEY,
                user_id uuid NOT NULL REFERENCES users (id),
                api_key_id uuid REFERENCES api_keys (id),
                kind text NOT NULL CHECK (kind IN ('create', 'rotate', 'disable', 'enable', 'delete')),
                parameters jsonb NOT NULL DEFAULT '{}',
                -- P-256 public key (SubjectPublicKeyInfo, base64) the operator encrypts the issued key to.
                reveal_public_key text,
                -- Its private key, protected by the portal's data protection: the operator cannot read it.
                reveal_private_key text,
                status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
                error text,
                result_api_key_id uuid,
                created_at timestamptz NOT NULL DEFAULT now(),
                completed_at timestamptz,
                revealed_at timestamptz,
                CONSTRAINT key_requests_key_needed CHECK (kind = 'create' OR api_key_id IS NOT NULL),
                CONSTRAINT key_requests_reveal_key CHECK (kind NOT IN ('create', 'rotate') OR reveal_public_key IS NOT NULL)
            );
            CREATE INDEX key_requests_pending_idx ON key_requests (created_at) WHERE status = 'pending';
            CREATE INDEX key_requests_user_idx ON key_requests (user_id, created_at);

            CREATE TABLE key_reveals (
                request_id uuid PRIMARY KEY REFERENCES key_requests (id) ON DELETE CASCADE,
                ciphertext bytea NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                expires_at timestamptz NOT NULL
            );
            CREATE INDEX key_reveals_expires_idx ON key_reveals (expires_at);

            -- Every new request wakes the operator leader, whoever inserted it.
            CREATE FUNCTION key_requests_notify() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('tokengate_key_requests', NEW.id::text);
                RETURN NEW;
            END $$;
            CREATE TRIGGER key_requests_inserted AFTER INSERT ON key_requests
                FOR EACH ROW EXECUTE FUNCTION key_requests_notify();
            """);
    }

    protected override void Down(MigrationBuilder migrationBuilder)
    {
        migrationBuilder.Sql("""
            DROP TRIGGER key_requests_inserted ON key_requests; DROP FUNCTION key_requests_notify();
            DROP TABLE key_reveals; DROP TABLE key_requests;
            ALTER TABLE api_keys DROP COLUMN portal_created, DROP COLUMN user_disabled;
            """);
    }
}
