using System.Globalization;
using Microsoft.AspNetCore.Localization;

namespace Gateway.Portal.Localization;

/// <summary>
/// English (default, and the resource key) and Simplified Chinese. The culture comes from the
/// language-switch cookie, then the browser's Accept-Language.
/// </summary>
public static class PortalLocalization
{
    public const string English = "en";
    public const string Chinese = "zh-CN";
    public static readonly string[] Supported = [English, Chinese];

    /// <summary>The cookie the language switch writes (ASP.NET Core's default name).</summary>
    public static string CookieName => CookieRequestCultureProvider.DefaultCookieName;

    public static IServiceCollection AddPortalLocalization(this IServiceCollection services)
    {
        services.AddLocalization(o => o.ResourcesPath = "Resources");
        services.Configure<RequestLocalizationOptions>(o =>
        {
            var cultures = Supported.Select(c => new CultureInfo(c)).ToList();
            o.DefaultRequestCulture = new RequestCulture(English);
            o.SupportedCultures = cultures;
            o.SupportedUICultures = cultures;
            o.FallBackToParentCultures = true;
            o.FallBackToParentUICultures = true;
            o.RequestCultureProviders =
            [
                new CookieRequestCultureProvider(),
                new AcceptLanguageHeaderRequestCultureProvider(),
            ];
        });
        return services;
    }

    /// <summary>Maps any requested culture to a supported one (zh, zh-Hans, zh-SG → zh-CN; anything else → en).</summary>
    public static string Normalize(string? culture) =>
        culture is not null && culture.StartsWith("zh", StringComparison.OrdinalIgnoreCase) ? Chinese : English;
}
