using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Core.Metrics;

/// <summary>Registers <see cref="PrometheusExporter"/>.</summary>
public static class PrometheusExporterServiceCollectionExtensions
{
    /// <summary>
    /// Adds the exporter as a singleton, created when the host starts so that measurements recorded
    /// before the first scrape are counted.
    /// </summary>
    public static IServiceCollection AddPrometheusExporter(this IServiceCollection services, Action<PrometheusExporterOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<PrometheusExporterOptions>();
        if (configure is not null) options.Configure(configure);
        services.TryAddSingleton(sp => new PrometheusExporter(
            sp.GetRequiredService<IOptions<PrometheusExporterOptions>>().Value,
            sp.GetService<ILogger<PrometheusExporter>>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PrometheusExporterActivation>());
        return services;
    }

    private sealed class PrometheusExporterActivation(PrometheusExporter exporter) : IHostedService
    {
        // Being constructed with the exporter is the point: resolving it starts the listener at host start.
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(exporter);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Maps the scrape endpoint.</summary>
public static class PrometheusEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps GET <paramref name="path"/> to the Prometheus text exposition of the registered
    /// <see cref="PrometheusExporter"/> (see AddPrometheusExporter).
    /// </summary>
    public static IEndpointConventionBuilder MapPrometheusMetrics(this IEndpointRouteBuilder endpoints, string path = "/metrics")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        return endpoints.MapGet(path, static async context =>
        {
            var exporter = context.RequestServices.GetRequiredService<PrometheusExporter>();
            context.Response.ContentType = PrometheusText.ContentType;
            context.Response.Headers.CacheControl = "no-store";
            await exporter.WriteAsync(context.Response.Body, context.RequestAborted);
        }).WithDisplayName("Prometheus metrics");
    }
}
