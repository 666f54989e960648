using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Core.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Core.Tests.Metrics;

public sealed class PrometheusEndpointTests
{
    private static async Task<(WebApplication App, Uri BaseAddress)> StartAsync(string meterPrefix)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddPrometheusExporter(o =>
        {
            o.MeterPrefixes.Clear();
            o.MeterPrefixes.Add(meterPrefix);
        });
        var app = builder.Build();
        app.MapPrometheusMetrics();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return (app, new Uri(address));
    }

    [Fact]
    public async Task Serves_metrics_over_http_in_the_text_format()
    {
        var meterName = "TokenGate.Tests." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        var (app, baseAddress) = await StartAsync(meterName);
        await using var _ = app;
        // Recorded before any scrape: the exporter must already be listening once the host started.
        meter.CreateCounter<long>("tokengate_proxy_requests").Add(7, new KeyValuePair<string, object?>("route", "chat"));
        meter.CreateHistogram<double>("tokengate_proxy_request_duration_seconds").Record(0.02);

        using var http = new HttpClient { BaseAddress = baseAddress };
        using var response = await http.GetAsync("/metrics");
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var e = Exposition.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(7, e.Value("tokengate_proxy_requests_total", ("route", "chat")));
        Assert.Equal(1, e.Value("tokengate_proxy_request_duration_seconds_bucket", ("le", "0.025")));
        Assert.Contains(e.Samples, s => s.Name == "process_cpu_seconds_total");
    }

    [Fact]
    public async Task Output_passes_promtool_check_metrics()
    {
        // promtool comes from Debian's "prometheus" package; where it is not installed this test
        // only checks nothing and says so, because the exposition is also parsed by the other tests.
        var promtool = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists);
        if (promtool is null)
        {
            Console.WriteLine("promtool not installed (apt-get install prometheus); skipping promtool check.");
            return;
        }
        var meterName = "TokenGate.Tests." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(meterName);
        var (app, baseAddress) = await StartAsync(meterName);
        await using var _ = app;
        meter.CreateCounter<long>("tokengate_proxy_requests_total", description: "Requests served.").Add(3, new KeyValuePair<string, object?>("route", "chat"));
        meter.CreateHistogram<double>("tokengate_proxy_request_duration_seconds", description: "Request duration in seconds.")
            .Record(0.2, new KeyValuePair<string, object?>("route", "a \"quoted\"\nvalue\\"));
        meter.CreateUpDownCounter<long>("tokengate_proxy_in_flight_requests", description: "Requests in flight.").Add(2);
        meter.CreateObservableGauge("tokengate_operator_leader", () => 1, description: "1 when this instance leads.");

        using var http = new HttpClient { BaseAddress = baseAddress };
        var text = await http.GetStringAsync("/metrics");

        var psi = new ProcessStartInfo(promtool, "check metrics") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(psi)!;
        await process.StandardInput.WriteAsync(text);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.True(process.ExitCode == 0, $"promtool check metrics failed:\n{await stdout}\n{await stderr}\n---\n{text}");
    }
}
