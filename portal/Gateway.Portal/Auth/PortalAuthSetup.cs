using Gateway.Portal.Sessions;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Auth;

/// <summary>Wires sign-in, sessions, data protection, forwarded headers and the auth rate limiter.</summary>
public static class PortalAuthSetup
{
    public const string DataProtectionApplicationName = "TokenGate.Portal";
    public const string AuthCookieName = "tg.auth";
    public const string AntiforgeryCookieName = "tg.af";

    public static IServiceCollection AddPortalAuth(this IServiceCollection services, IConfiguration configuration, string postgresConnectionString)
    {
        services.AddOptions<PortalOptions>().Bind(configuration.GetSection(PortalOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<PortalOptions>, PortalOptionsValidator>();
        services.TryAddSingleton(TimeProvider.System);

        services.AddDataProtection().SetApplicationName(DataProtectionApplicationName);
        services.AddSingleton<IConfigureOptions<KeyManagementOptions>>(
            new ConfigureOptions<KeyManagementOptions>(o => o.XmlRepository = new PostgresXmlRepository(postgresConnectionString)));

        services.AddSingleton<Credentials>();
        services.AddSingleton<AuditLog>();
        services.AddSingleton<SessionStore>();
        services.AddSingleton<SignInService>();
        services.AddSingleton<EnrolmentService>();
        services.AddSingleton<AccountSecurityService>();
        services.AddSingleton<EnrolmentCookie>();
        services.AddScoped<SessionCookieEvents>();

        services.AddAuthentication(CookieAuthenticationDefaults.AuthenticationScheme).AddCookie(o =>
        {
            o.Cookie.Name = AuthCookieName;
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.IsEssential = true;
            o.LoginPath = "/signin";
            o.LogoutPath = "/signout";
            o.AccessDeniedPath = "/signin";
            o.ReturnUrlParameter = "returnUrl";
            // The server-side session decides the lifetime; the cookie only has to outlive it.
            o.SlidingExpiration = false;
            o.EventsType = typeof(SessionCookieEvents);
        });
        services.AddOptions<CookieAuthenticationOptions>(CookieAuthenticationDefaults.AuthenticationScheme)
            .Configure<IOptions<PortalOptions>>((c, p) => c.ExpireTimeSpan = p.Value.SessionAbsoluteLifetime);

        services.AddAuthorizationBuilder()
            .SetFallbackPolicy(new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build())
            .AddPolicy(PortalClaims.AdminPolicy, p => p.RequireAuthenticatedUser().RequireRole(PortalClaims.AdminRole));

        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = AntiforgeryCookieName;
            o.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            o.Cookie.SameSite = SameSiteMode.Strict;
            o.Cookie.HttpOnly = true;
        });

        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<PortalOptions>>((f, p) =>
        {
            // Nothing is trusted by default (not even loopback): only the configured proxies. With both lists
            // empty the middleware would trust every sender, so no proxies means no forwarded headers at all.
            f.ForwardedHeaders = p.Value.TrustedProxies.Count == 0 ? ForwardedHeaders.None : ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            f.KnownProxies.Clear();
            f.KnownIPNetworks.Clear();
#pragma warning disable ASPDEPR005 // the obsolete list still holds the loopback default and is still consulted
            f.KnownNetworks.Clear();
#pragma warning restore ASPDEPR005
            foreach (var entry in p.Value.TrustedProxies)
            {
                if (!PortalOptions.TryParseProxy(entry, out var address, out var network)) continue;
                if (address is not null) f.KnownProxies.Add(address);
                if (network is { } n) f.KnownIPNetworks.Add(n);
            }
        });
        services.AddPortalRateLimiting();
        return services;
    }

    private sealed class PortalOptionsValidator : IValidateOptions<PortalOptions>
    {
        public ValidateOptionsResult Validate(string? name, PortalOptions options)
        {
            var errors = options.Validate().ToList();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}
