using Gateway.Operator.Kubernetes;
using Gateway.Operator.Sources;

namespace Gateway.Operator.OAuth;

/// <summary>Composition of the OAuth refresher (TokenGate:OAuth:Enabled, on by default).</summary>
public static class OAuthServiceCollectionExtensions
{
    /// <summary>
    /// Registers the refresher and its parts. It is not a hosted service here: the file source runs it as one,
    /// the Kubernetes source only on the leader. Registering <see cref="OAuthStateStore"/> also makes the reconciler
    /// report refresh failures and expiry in CredentialsValid.
    /// </summary>
    public static IServiceCollection AddOAuthRefresh(this IServiceCollection services, bool fileSource)
    {
        services.AddSingleton<OAuthRedisKeys>();
        services.AddSingleton<OAuthRefreshLease>();
        services.AddSingleton<OAuthPendingTokens>();
        services.AddSingleton<OAuthStateStore>();
        // No redirects: a token endpoint that redirects would get the refresh token re-posted somewhere else.
        services.AddSingleton(_ => new OAuthTokenClient(new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })));
        if (fileSource)
        {
            services.AddSingleton<IOAuthAccountSource>(sp => new FileOAuthAccounts(sp.GetRequiredService<FileResourceSource>(), sp.GetRequiredService<FileSourceDriver>()));
            services.AddSingleton(new OAuthRefresherIdentity($"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}"));
        }
        else
        {
            services.AddSingleton<IOAuthAccountSource>(sp => new KubernetesOAuthAccounts(sp.GetRequiredService<KubernetesOperator>()));
            services.AddSingleton(sp => new OAuthRefresherIdentity(sp.GetRequiredService<KubernetesOperator>().Identity));
        }
        services.AddSingleton<OAuthRefresher>();
        return services;
    }
}
