using Gateway.Portal.Admin;

namespace Gateway.Portal.Security;

/// <summary>Services of the Security and Admin pages.</summary>
public static class SecuritySetup
{
    public static IServiceCollection AddPortalSecurityAndAdmin(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<SecurityQueries>();
        services.AddSingleton<AdminQueries>();
        services.AddSingleton<SpendSnapshot>();
        services.AddAdminRedis(configuration);
        return services;
    }
}
