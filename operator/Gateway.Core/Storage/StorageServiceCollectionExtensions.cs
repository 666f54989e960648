using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Core.Storage;

/// <summary>Registers the PostgreSQL context and applies migrations.</summary>
public static class StorageServiceCollectionExtensions
{
    public static IServiceCollection AddTokenGateStorage(this IServiceCollection services, string connectionString)
    {
        services.AddDbContextFactory<TokenGateDbContext>(o => Configure(o, connectionString));
        return services;
    }

    public static void Configure(DbContextOptionsBuilder o, string connectionString) =>
        o.UseNpgsql(connectionString)
         // The schema is hand-written SQL, so there is no model snapshot to compare against.
         .ConfigureWarnings(w => w.Ignore(RelationalEventId.PendingModelChangesWarning));

    public static TokenGateDbContext CreateContext(string connectionString)
    {
        var b = new DbContextOptionsBuilder<TokenGateDbContext>();
        Configure(b, connectionString);
        return new TokenGateDbContext(b.Options);
    }

    /// <summary>Applies pending migrations (idempotent; concurrent callers are serialised by an advisory lock).</summary>
    public static async Task MigrateAsync(string connectionString, CancellationToken cancellationToken = default)
    {
        await using var db = CreateContext(connectionString);
        await db.Database.MigrateAsync(cancellationToken);
    }
}
