using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Portal.Keys;

/// <summary>Registers the Keys feature: key requests to the operator and one-time reveals.</summary>
public static class KeysServiceCollectionExtensions
{
    public static IServiceCollection AddPortalKeys(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddDataProtection();
        services.AddSingleton<KeyRequestClient>();
        services.AddSingleton<KeyReveal>();
        return services;
    }
}
