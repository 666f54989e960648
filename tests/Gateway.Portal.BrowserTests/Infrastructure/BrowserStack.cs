using Gateway.Core.Storage;
using Gateway.Core.Totp;
using Gateway.MockUpstream;
using Gateway.Operator.Hosting;
using Gateway.Operator.Sources;
using Gateway.Portal.Hosting;
using Gateway.Proxy;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Portal.BrowserTests.Infrastructure;

/// <summary>
/// Everything `make run` starts, in-process on 127.0.0.1 port 0: the mock upstream, the portal, the operator
/// (file source on a copy of config/samples, its own state dir, invite links pointing at this portal) and the
/// proxy, on a throw-away database and a unique Redis prefix. Every log line of the operator, proxy and portal
/// is captured for the secret scan.
/// </summary>
public sealed class BrowserStack : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];
    private string _root = null!;

    public TestDatabase Database { get; private set; } = null!;
    public string StateDir { get; private set; } = null!;
    public string RedisPrefix { get; } = TestEnvironment.UniqueRedisPrefix();
    public Uri PortalUrl { get; private set; } = null!;
    public Uri ProxyUrl { get; private set; } = null!;
    public FileResourceSource Source { get; private set; } = null!;
    /// <summary>The portal's clock: moved forward to get a fresh TOTP step instead of waiting for one.</summary>
    public ShiftedTimeProvider PortalTime { get; } = new();
    /// <summary>The key-hashing pepper (from its file, as a mounted Secret).</summary>
    public string Pepper { get; } = "browser-pepper-" + Guid.NewGuid().ToString("N");
    private readonly List<Uri> _metrics = [];
    /// <summary>/metrics of the portal, operator and proxy.</summary>
    public IReadOnlyList<Uri> MetricsUrls => _metrics;
    public IReadOnlyList<CapturingLoggerProvider> Logs { get; } =
        [new CapturingLoggerProvider("operator"), new CapturingLoggerProvider("proxy"), new CapturingLoggerProvider("portal")];

    public static async Task<BrowserStack> StartAsync()
    {
        var s = new BrowserStack();
        try
        {
            await s.StartInternalAsync();
        }
        catch
        {
            await s.DisposeAsync();
            throw;
        }
        return s;
    }

    private async Task StartInternalAsync()
    {
        Database = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(Database.ConnectionString);
        _root = Path.Combine(Path.GetTempPath(), "tg-browser-" + Guid.NewGuid().ToString("N")[..8]);
        var samples = Path.Combine(_root, "samples");
        StateDir = Path.Combine(_root, "state");
        Directory.CreateDirectory(samples);
        var pepperFile = Path.Combine(_root, "pepper");
        await File.WriteAllTextAsync(pepperFile, Pepper);

        var mockUrl = await StartAsync(MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"]));
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml"))
        {
            var text = (await File.ReadAllTextAsync(f)).Replace("http://127.0.0.1:8089", mockUrl.ToString().TrimEnd('/'), StringComparison.Ordinal);
            // The demo user is an admin here, so the journey also reaches (and screenshots) the admin overview.
            if (Path.GetFileName(f) == "userquota-demo.yaml") text = text.TrimEnd() + "\n  portal:\n    role: admin\n";
            await File.WriteAllTextAsync(Path.Combine(samples, Path.GetFileName(f)), text);
        }

        // The schema is migrated first: the portal waits for the operator's migrations, the operator for the portal's URL.
        // Redis settings as the other hosts (the portal's harness sets them too), so the stack shares one prefix.
        var portal = PortalApp.Build(
            ["--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0", "--ConnectionStrings:Postgres", Database.ConnectionString,
             "--ConnectionStrings:Redis", TestEnvironment.Redis, "--TokenGate:Redis:KeyPrefix", RedisPrefix],
            b =>
            {
                // Many sign-in posts come from 127.0.0.1 in one run; the limiter has its own test elsewhere.
                b.Configuration.AddInMemoryCollection(new Dictionary<string, string?> { ["TokenGate:Portal:AuthPostsPerMinute"] = "100000" });
                b.Services.AddSingleton<TimeProvider>(PortalTime);
            });
        PortalUrl = await StartAsync(portal, Logs[2]);
        _metrics.Add(new Uri(portal.Services.GetRequiredService<Gateway.Core.Hosting.Listeners>().ManagementUrls[0], "metrics"));

        string[] common =
        [
            "--ConnectionStrings:Postgres", Database.ConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:PepperFile", pepperFile,
            .. TestCredentialKeys.Args,
            "--TokenGate:Redis:KeyPrefix", RedisPrefix,
            "--TokenGate:PricesDirectory", RepoPaths.Prices,
        ];
        var op = OperatorApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--source", "dir:" + samples, "--state-dir", StateDir,
            "--TokenGate:PortalBaseUrl", PortalUrl.ToString().TrimEnd('/')]);
        var operatorUrl = await StartAsync(op, Logs[0]);
        _metrics.Add(new Uri(operatorUrl, "metrics"));
        Source = op.Services.GetRequiredService<FileResourceSource>();

        var proxy = ProxyApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0"]);
        await StartAsync(proxy, Logs[1]);
        ProxyUrl = proxy.Services.GetRequiredService<Gateway.Core.Hosting.Listeners>().PublicUrls[0];
        _metrics.Add(new Uri(proxy.Services.GetRequiredService<Gateway.Core.Hosting.Listeners>().ManagementUrls[0], "metrics"));

        using var http = new HttpClient();
        foreach (var ready in new[] { new Uri(operatorUrl, "readyz"), new Uri(ProxyUrl, "readyz"), new Uri(PortalUrl, "readyz") })
        {
            await Eventually.TrueAsync(async () => (await http.GetAsync(ready)).IsSuccessStatusCode, $"{ready} to report ready");
        }
    }

    private async Task<Uri> StartAsync(WebApplication app, CapturingLoggerProvider? logs = null)
    {
        _apps.Add(app);
        // Added to the built factory: the hosts clear their providers while composing, after any callback.
        if (logs is not null) app.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Uri(address.TrimEnd('/') + "/");
    }

    /// <summary>The key the operator issued into the demo Secret manifest.</summary>
    public Task<string> DemoKeyAsync() => SecretValueAsync("demo-apikey", "OPENAI_API_KEY", "the operator to issue the demo key");

    /// <summary>The invite link the operator wrote into the demo user's invite Secret manifest (as `make run` prints it).</summary>
    public Task<string> InviteUrlAsync() => SecretValueAsync("demo-invite", "INVITE_URL", "the operator to issue the demo invite");

    private Task<string> SecretValueAsync(string name, string item, string what) => Eventually.ReturnsAsync(async () =>
    {
        var s = await Source.GetSecretAsync("default", name, CancellationToken.None);
        return s is not null && s.TryGetValue(item, out var v) ? System.Text.Encoding.UTF8.GetString(v) : null;
    }, what);

    public TokenGateDbContext CreateDbContext() => StorageServiceCollectionExtensions.CreateContext(Database.ConnectionString);

    /// <summary>
    /// A TOTP code the portal accepts now for <paramref name="userId"/>: a step after the last accepted one, moving
    /// the portal's clock forward by a step when the current one is used (replay protection).
    /// </summary>
    public async Task<string> NextTotpCodeAsync(Guid userId, string base32Secret)
    {
        await using var db = CreateDbContext();
        var last = await db.Users.Where(u => u.Id == userId).Select(u => u.TotpLastStep).SingleAsync();
        var totp = new TotpService(PortalTime);
        var now = totp.CurrentTimeStep();
        if (last is { } l && l >= now)
        {
            PortalTime.Advance(TimeSpan.FromSeconds(totp.Parameters.PeriodSeconds * (l - now + 1)));
            now = totp.CurrentTimeStep();
        }
        return totp.ComputeCodeForStep(Base32.Decode(base32Secret), now);
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            try
            {
                await _apps[i].StopAsync();
            }
            finally
            {
                await _apps[i].DisposeAsync();
            }
        }
        if (Database is not null) await Database.DisposeAsync();
        try
        {
            if (_root is not null) Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
