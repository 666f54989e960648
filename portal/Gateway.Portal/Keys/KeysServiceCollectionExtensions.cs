using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Portal.Keys;

/// <summary>Registers the Keys feature: key requests to the operator and one-time reveals.</summary>
public static class KeysServiceCollectionExtensions
{
    /// <summary>Needs data protection (set up by AddPortalAuth: the reveal's private keys are protected with it).</summary>
    public static IServiceCollection AddPortalKeys(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<KeyRequestClient>();
        services.AddSingleton<KeyReveal>();
        return services;
    }
}
