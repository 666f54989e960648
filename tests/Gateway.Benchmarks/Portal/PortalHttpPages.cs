using System.Diagnostics;
using System.Security.Claims;
using System.Text.Encodings.Web;
using Gateway.Portal.Hosting;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Benchmarks.Portal;

/// <summary>
/// The same pages through the real portal over HTTP on loopback (routing, authorization, page model, Razor
/// rendering, localization): the portal runs in this process with one change — requests are authenticated
/// as the benchmark user by a scheme of the benchmark's own instead of the sign-in cookie, since the
/// generated users have no password or TOTP secret. Times are measured by the client.
/// </summary>
internal static class PortalHttpPages
{
    public const string Scheme = "Bench";

    public static async Task<List<(string Page, double[] Ms)>> RunAsync(string connectionString, Guid user, UsageCursor? page100, int iterations, TextWriter log)
    {
        var app = PortalApp.Build(["--urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", connectionString], b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            b.Services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, BenchUserHandler>(Scheme, _ => { });
            b.Services.AddSingleton(new BenchUser(user));
            b.Services.PostConfigure<AuthenticationOptions>(o =>
            {
                o.DefaultScheme = Scheme;
                o.DefaultAuthenticateScheme = Scheme;
                o.DefaultChallengeScheme = Scheme;
            });
        });
        await app.StartAsync();
        try
        {
            var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            using var http = new HttpClient { BaseAddress = new Uri(url) };
            var pages = new List<(string, string)>
            {
                ("dashboard (HTTP)", "/"),
                ("usage, page 1 (HTTP)", "/usage"),
                ("usage, page 100, model filter (HTTP)", "/usage?model=gpt-4o&after=" + Uri.EscapeDataString(page100?.ToString() ?? "")),
                ("request detail (HTTP)", "/usage/bench-0000500000"),
                ("ledger (HTTP)", "/ledger"),
            };
            var results = new List<(string, double[])>();
            foreach (var (name, path) in pages)
            {
                for (var i = 0; i < 3; i++) (await http.GetAsync(path)).EnsureSuccessStatusCode();
                var ms = new double[iterations];
                for (var i = 0; i < iterations; i++)
                {
                    var start = Stopwatch.GetTimestamp();
                    using var response = await http.GetAsync(path);
                    response.EnsureSuccessStatusCode();
                    ms[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                }
                results.Add((name, ms));
            }
            var sw = Stopwatch.StartNew();
            using (var csv = await http.GetAsync("/usage/export.csv", HttpCompletionOption.ResponseHeadersRead))
            {
                csv.EnsureSuccessStatusCode();
                await using var body = await csv.Content.ReadAsStreamAsync();
                var buffer = new byte[64 * 1024];
                long bytes = 0;
                int n;
                while ((n = await body.ReadAsync(buffer)) > 0) bytes += n;
                await log.WriteLineAsync($"CSV over HTTP: {bytes / 1024.0 / 1024.0:F1} MiB in {sw.Elapsed.TotalSeconds:F1} s");
            }
            return results;
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    private sealed record BenchUser(Guid Id);

    private sealed class BenchUserHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, BenchUser user)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var identity = new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, user.Id.ToString("D")), new Claim(ClaimTypes.Name, "user-1")], PortalHttpPages.Scheme);
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), PortalHttpPages.Scheme)));
        }
    }
}
