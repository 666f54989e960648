using Gateway.Core.Hosting;
using Gateway.MockUpstream;
using Gateway.Operator.Hosting;
using Gateway.Operator.Sources;
using Gateway.Proxy;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.EndToEnd;

/// <summary>
/// The whole product on one machine, as `make run` starts it but in-process on free ports: the mock
/// upstream, the operator with the file source on a copy of config/samples, and the proxy, against the
/// real PostgreSQL (a throw-away database) and Redis (a unique key prefix).
/// </summary>
public sealed class GatewayStack : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];
    private string _redis = TestEnvironment.Redis;

    /// <summary>The stack's throw-away database on the shared server; null when the test brought its own PostgreSQL.</summary>
    public TestDatabase? Database { get; private set; }
    /// <summary>The pepper's file (as a mounted Secret), for processes that join the stack.</summary>
    public string PepperFile { get; private set; } = null!;
    /// <summary>The operator's PostgreSQL connection string.</summary>
    public string PostgresConnectionString { get; private set; } = null!;
    public string SamplesDir { get; private set; } = null!;
    public string StateDir { get; private set; } = null!;
    public string RedisPrefix { get; } = TestEnvironment.UniqueRedisPrefix();
    /// <summary>The Redis the stack uses (the shared one, or the test's own), for processes that join the stack.</summary>
    public string Redis => _redis;
    public Uri MockUrl { get; private set; } = null!;
    public Uri OperatorUrl { get; private set; } = null!;
    public Uri ProxyUrl { get; private set; } = null!;
    /// <summary>The proxy's management listener (/metrics, /healthz, /readyz).</summary>
    public Uri ProxyManagementUrl { get; private set; } = null!;
    public FileResourceSource Source { get; private set; } = null!;
    /// <summary>The credential key ring folder (one file per key id, as a mounted Secret).</summary>
    public string CredentialKeysDir { get; private set; } = null!;

    /// <param name="redis">Address of a Redis of the test's own (e.g. a throw-away server it kills); the shared one by default.</param>
    /// <param name="postgres">Connection string of a PostgreSQL database of the test's own; a throw-away database on the shared server by default.</param>
    public static async Task<GatewayStack> StartAsync(string? redis = null, string? postgres = null)
    {
        var s = new GatewayStack { _redis = redis ?? TestEnvironment.Redis, PostgresConnectionString = postgres! };
        await s.StartInternalAsync();
        return s;
    }

    private async Task StartInternalAsync()
    {
        if (PostgresConnectionString is null)
        {
            Database = await TestDatabase.CreateAsync();
            PostgresConnectionString = Database.ConnectionString;
        }
        var root = Path.Combine(Path.GetTempPath(), "tg-e2e-" + Guid.NewGuid().ToString("N")[..8]);
        SamplesDir = Path.Combine(root, "samples");
        StateDir = Path.Combine(root, "state");
        Directory.CreateDirectory(SamplesDir);
        var pepperFile = PepperFile = Path.Combine(root, "pepper");
        await File.WriteAllTextAsync(pepperFile, "e2e-pepper-" + Guid.NewGuid().ToString("N"));
        // As `make run` does: a folder with one generated key, shared by the operator and the proxy.
        CredentialKeysDir = TestCredentialKeys.WriteDirectory(root);

        var mock = MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"]);
        MockUrl = await StartAsync(mock);

        // The sample UpstreamAccount points at :8089; here the mock listens on a free port.
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml"))
        {
            var text = (await File.ReadAllTextAsync(f)).Replace("http://127.0.0.1:8089", MockUrl.ToString().TrimEnd('/'), StringComparison.Ordinal);
            await File.WriteAllTextAsync(Path.Combine(SamplesDir, Path.GetFileName(f)), text);
        }

        string[] common =
        [
            "--ConnectionStrings:Postgres", PostgresConnectionString,
            "--ConnectionStrings:Redis", _redis,
            "--TokenGate:PepperFile", pepperFile,
            "--TokenGate:Credentials:KeysDirectory", CredentialKeysDir,
            "--TokenGate:Redis:KeyPrefix", RedisPrefix,
            "--TokenGate:PricesDirectory", RepoPaths.Prices,
        ];
        var op = OperatorApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--source", "dir:" + SamplesDir, "--state-dir", StateDir]);
        OperatorUrl = await StartAsync(op);
        Source = op.Services.GetRequiredService<FileResourceSource>();

        var proxy = ProxyApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0"]);
        await StartAsync(proxy);
        var listeners = proxy.Services.GetRequiredService<Listeners>();
        ProxyUrl = listeners.PublicUrls[0];
        ProxyManagementUrl = listeners.ManagementUrls[0];

        // As `make run` does: wait until both report ready (schema migrated, Redis connected).
        using var http = new HttpClient();
        foreach (var ready in new[] { new Uri(OperatorUrl, "readyz"), new Uri(ProxyUrl, "readyz") })
        {
            await Eventually.TrueAsync(async () => (await http.GetAsync(ready)).IsSuccessStatusCode, $"{ready} to report ready");
        }
    }

    private async Task<Uri> StartAsync(WebApplication app)
    {
        _apps.Add(app);
        await app.StartAsync();
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
    }

    /// <summary>Whether the operator has marked the projection complete (its epoch is in Redis): until then the proxy
    /// cannot judge a key and answers 503.</summary>
    public async Task<bool> ProjectionBuiltAsync()
    {
        await using var redis = await Gateway.Core.Redis.RedisClients.ConnectAsync(_redis);
        return (await redis.ExecuteAsync("EXISTS", [new Gateway.Core.Projection.ProjectionKeys(RedisPrefix).Epoch])).AsInt64() == 1;
    }

    /// <summary>The key the operator issued into the demo Secret manifest.</summary>
    public async Task<string> DemoKeyAsync() => await Eventually.ReturnsAsync(async () =>
    {
        var s = await Source.GetSecretAsync("default", "demo-apikey", CancellationToken.None);
        return s is null ? null : System.Text.Encoding.UTF8.GetString(s["OPENAI_API_KEY"]);
    }, "the operator to issue the demo key");

    public async ValueTask DisposeAsync()
    {
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        if (Database is not null) await Database.DisposeAsync();
        try { Directory.Delete(Path.GetDirectoryName(SamplesDir)!, recursive: true); } catch (IOException) { }
    }
}
