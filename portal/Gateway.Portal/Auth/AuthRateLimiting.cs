using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;

namespace Gateway.Portal.Auth;

/// <summary>Marks a page whose POSTs (sign-in, enrolment) are limited per client IP.</summary>
[AttributeUsage(AttributeTargets.Class)]
public sealed class AuthRateLimitedAttribute : Attribute;

/// <summary>
/// A fixed-window limiter partitioned by client IP (after trusted forwarded headers) on the POSTs of
/// pages marked <see cref="AuthRateLimitedAttribute"/>: it slows password guessing across many
/// accounts, which the per-user lockout alone does not. Refusals get a 429 page with Retry-After.
/// </summary>
public static class AuthRateLimiting
{
    public static IServiceCollection AddPortalRateLimiting(this IServiceCollection services)
    {
        services.AddRateLimiter(_ => { });
        services.AddOptions<RateLimiterOptions>().Configure<IOptions<PortalOptions>>((o, portal) =>
        {
            var permits = portal.Value.AuthPostsPerMinute;
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                var limited = HttpMethods.IsPost(context.Request.Method)
                    && context.GetEndpoint()?.Metadata.GetMetadata<AuthRateLimitedAttribute>() is not null;
                if (!limited) return RateLimitPartition.GetNoLimiter("");
                var ip = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                return RateLimitPartition.GetFixedWindowLimiter(ip, _ => new FixedWindowRateLimiterOptions
                {
                    PermitLimit = permits,
                    Window = TimeSpan.FromMinutes(1),
                    QueueLimit = 0,
                });
            });
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.OnRejected = WriteRejectionAsync;
        });
        return services;
    }

    private static async ValueTask WriteRejectionAsync(OnRejectedContext context, CancellationToken ct)
    {
        var http = context.HttpContext;
        var logger = http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(AuthRateLimiting));
        Log.RateLimited(logger, http.Connection.RemoteIpAddress?.ToString() ?? "unknown");
        var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromMinutes(1);
        var seconds = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds));
        http.Response.StatusCode = StatusCodes.Status429TooManyRequests;
        http.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        http.Response.ContentType = "text/html; charset=utf-8";
        var zh = CultureInfo.CurrentUICulture.Name.StartsWith("zh", StringComparison.OrdinalIgnoreCase);
        var (lang, title, text, back) = zh
            ? ("zh-CN", "请求过多", $"来自您网络地址的登录或注册尝试过多。请在 {seconds} 秒后重试。", "返回登录")
            : ("en", "Too many attempts", $"Too many sign-in or enrolment attempts came from your network address. Please wait {seconds} seconds and try again.", "Back to sign in");
        await http.Response.WriteAsync($"""
            <!DOCTYPE html>
            <html lang="{lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>{title} · TokenGate</title><link rel="stylesheet" href="/css/site.css"></head>
            <body><main id="main" class="narrow"><h1>{title}</h1><p role="alert">{text}</p><p><a href="/signin">{back}</a></p></main></body></html>
            """, ct);
    }
}
