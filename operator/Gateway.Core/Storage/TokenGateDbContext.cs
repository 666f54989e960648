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
    public DbSet<UsageDailyRow> UsageDaily => Set<UsageDailyRow>();
    public DbSet<LedgerDailyRow> LedgerDaily => Set<LedgerDailyRow>();
    public DbSet<PortalSessionRow> PortalSessions => Set<PortalSessionRow>();
    public DbSet<SigninEventRow> SigninEvents => Set<SigninEventRow>();
    public DbSet<AuditLogRow> AuditLog => Set<AuditLogRow>();
    public DbSet<RecoveryCodeRow> RecoveryCodes => Set<RecoveryCodeRow>();
    public DbSet<UsedInviteRow> UsedInvites => Set<UsedInviteRow>();
    public DbSet<DataProtectionKeyRow> DataProtectionKeys => Set<DataProtectionKeyRow>();
    public DbSet<KeyRequestRow> KeyRequests => Set<KeyRequestRow>();
    public DbSet<KeyRevealRow> KeyReveals => Set<KeyRevealRow>();

    protected override void OnModelCreating(ModelBuilder b)
    {
        ArgumentNullException.ThrowIfNull(b);
        b.Entity<UserRow>(e =>
        {
            e.ToTable("users");
            e.HasKey(x => x.Id);
            e.Property(x => x.Spec).HasColumnType("jsonb");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<ApiKeyRow>(e =>
        {
            e.ToTable("api_keys");
            e.HasKey(x => x.Id);
            e.Property(x => x.Spec).HasColumnType("jsonb");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<ApiKeyVersionRow>(e =>
        {
            e.ToTable("api_key_versions");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.KeyHash).IsUnique();
        });
        b.Entity<UpstreamAccountRow>(e =>
        {
            e.ToTable("upstream_accounts");
            e.HasKey(x => x.Id);
            e.Property(x => x.Spec).HasColumnType("jsonb");
            e.HasIndex(x => new { x.Namespace, x.Name }).IsUnique();
        });
        b.Entity<LedgerEntryRow>(e =>
        {
            e.ToTable("ledger_entries");
            e.HasKey(x => x.Id);
            e.Property(x => x.Amount).HasColumnType("numeric(20,8)");
        });
        b.Entity<UsageLogRow>(e =>
        {
            e.ToTable("usage_log");
            e.HasKey(x => x.Id);
            e.Property(x => x.Cost).HasColumnType("numeric(20,8)");
            e.HasIndex(x => x.RequestId).IsUnique();
        });
        b.Entity<UsageDailyRow>(e => { e.ToTable("usage_daily").HasNoKey(); e.Property(x => x.Cost).HasColumnType("numeric(20,8)"); });
        b.Entity<LedgerDailyRow>(e => { e.ToTable("ledger_daily").HasKey(x => new { x.UserId, x.Day }); e.Property(x => x.Amount).HasColumnType("numeric(20,8)"); });

        PortalEntities.Configure(b);
        KeyRequestModel.Map(b);

        // The hand-written schema uses snake_case columns: map every property by that rule instead of one by one.
        foreach (var entity in b.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties()) property.SetColumnName(SnakeCase(property.Name));
        }
    }

    private static string SnakeCase(string name)
    {
        var sb = new System.Text.StringBuilder(name.Length + 8);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0) sb.Append('_');
            sb.Append(char.ToLowerInvariant(name[i]));
        }
        return sb.ToString();
    }
}