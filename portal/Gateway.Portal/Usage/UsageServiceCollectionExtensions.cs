using Microsoft.Extensions.DependencyInjection.Extensions;
using Npgsql;

namespace Gateway.Portal.Usage;

/// <summary>Registers the usage, ledger and dashboard queries.</summary>
public static class UsageServiceCollectionExtensions
{
    public static IServiceCollection AddPortalUsage(this IServiceCollection services, string connectionString)
    {
        // One pooled data source for plain SQL; another feature may have registered it already (same database).
        services.TryAddSingleton(_ => NpgsqlDataSource.Create(connectionString));
        services.AddSingleton<UsageQueries>();
        services.AddSingleton<UsageCsvExport>();
        services.AddSingleton<LedgerQueries>();
        services.AddSingleton<DashboardQueries>();
        return services;
    }
}
