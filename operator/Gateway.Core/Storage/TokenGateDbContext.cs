using Microsoft.EntityFrameworkCore;

namespace Gateway.Core.Storage;

/// <summary>The PostgreSQL system of record. The schema is defined by hand-written SQL migrations.</summary>
public sealed class TokenGateDbContext(DbContextOptions<TokenGateDbContext> options) : DbContext(options)
{
    public DbSet<UserRow> Users => Set<UserRow>();
    public DbSet<ApiKeyRow> ApiKeys => Set<ApiKeyRow>();
    public DbSet<ApiKeyVersionRow> ApiKeyVersions => Set<ApiKeyVersionRow>();
    public DbSet<UpstreamAccountRow> UpstreamAccounts => Set<UpstreamAccountRow>();
    public DbSet<LedgerEntryRow> LedgerEntries => Set<LedgerEntryRow>();
    public DbSet<UsageLogRow> UsageLog => Set<UsageLogRow>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.Entity<UserRow>(e =>
        {
            e.ToTable("users");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Namespace).HasColumnName("namespace");
            e.Property(x => x.Name).HasColumnName("name");
            e.Property(x => x.Login).HasColumnName("login");
            e.Property(x => x.Email).HasColumnName("email");
            e.Property(x => x.DisplayName).HasColumnName("display_name");
            e.Property(x => x.PasswordHash).HasColumnName("password_hash");
            e.Property(x => x.TotpSecretProtected).HasColumnName("totp_secret_protected");
            e.Property(x => x.TotpLastStep).HasColumnName("totp_last_step");
            e.Property(x => x.Enrollment).HasColumnName("enrollment");
            e.Property(x => x.InviteTokenHash).HasColumnName("invite_token_hash");
            e.Property(x => x.InviteExpiresAt).HasColumnName("invite_expires_at");
            e.Property(x => x.Suspended).HasColumnName("suspended");
            e.Property(x => x.Spec).HasColumnName("spec").HasColumnType("jsonb");
            e.Property(x => x.Generation).HasColumnName("generation");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
            e.Property(x => x.UpdatedAt).HasColumnName("updated_at");
            e.Property(x => x.DeletedAt).HasColumnName("deleted_at");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<ApiKeyRow>(e =>
        {
            e.ToTable("api_keys");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Namespace).HasColumnName("namespace");
            e.Property(x => x.Name).HasColumnName("name");
            e.Property(x => x.UserId).HasColumnName("user_id");
            e.Property(x => x.Description).HasColumnName("description");
            e.Property(x => x.CurrentVersion).HasColumnName("current_version");
            e.Property(x => x.KeyPrefix).HasColumnName("key_prefix");
            e.Property(x => x.Disabled).HasColumnName("disabled");
            e.Property(x => x.ExpiresAt).HasColumnName("expires_at");
            e.Property(x => x.LastRotateRequest).HasColumnName("last_rotate_request");
            e.Property(x => x.Spec).HasColumnName("spec").HasColumnType("jsonb");
            e.Property(x => x.Generation).HasColumnName("generation");
            e.Property(x => x.LastUsedAt).HasColumnName("last_used_at");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
            e.Property(x => x.UpdatedAt).HasColumnName("updated_at");
            e.Property(x => x.DeletedAt).HasColumnName("deleted_at");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<ApiKeyVersionRow>(e =>
        {
            e.ToTable("api_key_versions");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.ApiKeyId).HasColumnName("api_key_id");
            e.Property(x => x.Version).HasColumnName("version");
            e.Property(x => x.KeyHash).HasColumnName("key_hash");
            e.Property(x => x.KeyPrefix).HasColumnName("key_prefix");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
            e.Property(x => x.ExpiresAt).HasColumnName("expires_at");
            e.Property(x => x.RevokedAt).HasColumnName("revoked_at");
            e.HasIndex(x => x.KeyHash).IsUnique();
        });
        b.Entity<UpstreamAccountRow>(e =>
        {
            e.ToTable("upstream_accounts");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.Namespace).HasColumnName("namespace");
            e.Property(x => x.Name).HasColumnName("name");
            e.Property(x => x.Provider).HasColumnName("provider");
            e.Property(x => x.BaseUrl).HasColumnName("base_url");
            e.Property(x => x.Priority).HasColumnName("priority");
            e.Property(x => x.Weight).HasColumnName("weight");
            e.Property(x => x.Disabled).HasColumnName("disabled");
            e.Property(x => x.Spec).HasColumnName("spec").HasColumnType("jsonb");
            e.Property(x => x.Generation).HasColumnName("generation");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
            e.Property(x => x.UpdatedAt).HasColumnName("updated_at");
            e.Property(x => x.DeletedAt).HasColumnName("deleted_at");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<LedgerEntryRow>(e =>
        {
            e.ToTable("ledger_entries");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.UserId).HasColumnName("user_id");
            e.Property(x => x.Kind).HasColumnName("kind");
            e.Property(x => x.Amount).HasColumnName("amount").HasColumnType("numeric(20,8)");
            e.Property(x => x.GrantId).HasColumnName("grant_id");
            e.Property(x => x.RequestId).HasColumnName("request_id");
            e.Property(x => x.ApiKeyId).HasColumnName("api_key_id");
            e.Property(x => x.PriceVersion).HasColumnName("price_version");
            e.Property(x => x.Reason).HasColumnName("reason");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
        });
        b.Entity<UsageLogRow>(e =>
        {
            e.ToTable("usage_log");
            e.HasKey(x => x.Id);
            e.Property(x => x.Id).HasColumnName("id");
            e.Property(x => x.RequestId).HasColumnName("request_id");
            e.Property(x => x.ApiKeyId).HasColumnName("api_key_id");
            e.Property(x => x.KeyVersion).HasColumnName("key_version");
            e.Property(x => x.UserId).HasColumnName("user_id");
            e.Property(x => x.Upstream).HasColumnName("upstream");
            e.Property(x => x.Model).HasColumnName("model");
            e.Property(x => x.Route).HasColumnName("route");
            e.Property(x => x.InputTokens).HasColumnName("input_tokens");
            e.Property(x => x.CachedInputTokens).HasColumnName("cached_input_tokens");
            e.Property(x => x.CacheWriteTokens).HasColumnName("cache_write_tokens");
            e.Property(x => x.OutputTokens).HasColumnName("output_tokens");
            e.Property(x => x.Cost).HasColumnName("cost").HasColumnType("numeric(20,8)");
            e.Property(x => x.PriceVersion).HasColumnName("price_version");
            e.Property(x => x.StartedAt).HasColumnName("started_at");
            e.Property(x => x.DurationMs).HasColumnName("duration_ms");
            e.Property(x => x.TtfbMs).HasColumnName("ttfb_ms");
            e.Property(x => x.Status).HasColumnName("status");
            e.Property(x => x.Estimated).HasColumnName("estimated");
            e.Property(x => x.Streamed).HasColumnName("streamed");
            e.Property(x => x.CreatedAt).HasColumnName("created_at");
            e.HasIndex(x => x.RequestId).IsUnique();
        });
    }
}
