using Gateway.Core.Metrics;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Gateway.Core.Hosting;

/// <summary>What /readyz reports: ready, or the reason it is not.</summary>
public readonly record struct Readiness(bool Ready, string Reason)
{
    public static readonly Readiness Yes = new(true, "ready");

    public static Readiness No(string reason) => new(false, reason);
}

/// <summary>Maps /healthz and /readyz (every listener) and /metrics (management listener only).</summary>
public static class ManagementEndpoints
{
    public static IEndpointRouteBuilder MapManagementEndpoints(this IEndpointRouteBuilder endpoints, Func<HttpContext, ValueTask<Readiness>> readiness)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(readiness);
        // Anonymous: probes and Prometheus carry no credentials, whatever authorization the host requires elsewhere.
        endpoints.MapGet("/healthz", static () => Results.Text("ok")).OnEveryListener().AllowAnonymous();
        endpoints.MapGet("/readyz", async context =>
        {
            var r = await readiness(context).ConfigureAwait(false);
            context.Response.StatusCode = r.Ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
            context.Response.ContentType = "text/plain; charset=utf-8";
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsync(r.Ready ? "ready" : "not ready: " + r.Reason, context.RequestAborted).ConfigureAwait(false);
        }).OnEveryListener().AllowAnonymous();
        endpoints.MapPrometheusMetrics().OnManagementListenerOnly().AllowAnonymous();
        // Anything else on the management listener is a plain 404, whatever the host does with unknown paths
        // (the portal would redirect to its sign-in page).
        endpoints.Map("/{**path}", static context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }).WithOrder(int.MaxValue).OnManagementListenerOnly().AllowAnonymous().WithDisplayName("Management listener: not found");
        return endpoints;
    }
}
