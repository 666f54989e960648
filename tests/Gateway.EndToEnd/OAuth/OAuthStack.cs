using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Hosting;
using Gateway.Core.Resources;
using Gateway.MockUpstream;
using Gateway.MockUpstream.OAuth;
using Gateway.Operator.Hosting;
using Gateway.Operator.Sources;
using Gateway.Proxy;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.EndToEnd.OAuth;

/// <summary>
/// Operator (file source, OAuth refresher checking every 200 ms) and proxy in-process against the real PostgreSQL
/// and Redis, with an OAuth mock provider (short-lived access tokens required on its API routes) and a plain mock
/// (API key) as a second upstream. A user and key of its own, without rate limits, so only the upstreams decide.
/// </summary>
public sealed class OAuthStack : IAsyncDisposable
{
    public const string ClientId = "tokengate-e2e-client";
    private readonly List<WebApplication> _apps = [];

    public TestDatabase Database { get; private set; } = null!;
    public string SamplesDir { get; private set; } = null!;
    public MockUpstreamServer OAuthMock { get; private set; } = null!;
    public MockUpstreamServer PlainMock { get; private set; } = null!;
    public FileResourceSource Source { get; private set; } = null!;
    public Uri ProxyUrl { get; private set; } = null!;
    public Uri OperatorUrl { get; private set; } = null!;
    /// <summary>The proxy's management listener (/metrics).</summary>
    public Uri ProxyManagementUrl { get; private set; } = null!;
    public string RedisPrefix { get; } = TestEnvironment.UniqueRedisPrefix();
    public string Pepper { get; } = "oauth-pepper-" + Guid.NewGuid().ToString("N");
    /// <summary>Every log line of the operator and the proxy (captured when started with <see cref="StartWithDebugLogsAsync"/>).</summary>
    public IReadOnlyList<CapturingLoggerProvider> Logs { get; } = [new CapturingLoggerProvider("operator"), new CapturingLoggerProvider("proxy")];
    private bool _captureLogs;

    /// <param name="proxyArgs">Extra proxy settings (command-line form), e.g. a shorter cooldown.</param>
    public static async Task<OAuthStack> StartAsync(double accessTokenLifetimeSeconds, params string[] proxyArgs)
    {
        var s = new OAuthStack();
        await s.StartInternalAsync(accessTokenLifetimeSeconds, proxyArgs);
        return s;
    }

    /// <summary>The stack with the operator and proxy logging at Debug, every line captured in <see cref="Logs"/>.</summary>
    public static async Task<OAuthStack> StartWithDebugLogsAsync(double accessTokenLifetimeSeconds)
    {
        var s = new OAuthStack { _captureLogs = true };
        await s.StartInternalAsync(accessTokenLifetimeSeconds, []);
        return s;
    }

    private async Task StartInternalAsync(double lifetime, string[] proxyArgs)
    {
        Database = await TestDatabase.CreateAsync();
        var root = Path.Combine(Path.GetTempPath(), "tg-oauth-" + Guid.NewGuid().ToString("N")[..8]);
        SamplesDir = Path.Combine(root, "samples");
        Directory.CreateDirectory(SamplesDir);
        var pepperFile = Path.Combine(root, "pepper");
        await File.WriteAllTextAsync(pepperFile, Pepper);
        // Credentials are encrypted in the projection: one generated key, shared by the operator and the proxy.
        var credentialKeys = TestCredentialKeys.WriteDirectory(root);

        OAuthMock = await MockUpstreamServer.StartAsync(
        [
            new("Mock:OAuth:RequireAccessToken", "true"),
            new("Mock:OAuth:AccessTokenLifetimeSeconds", lifetime.ToString(CultureInfo.InvariantCulture)),
            new("Mock:OAuth:ClientId", ClientId),
            // Only the token endpoint's tokens: the static key must not open the OAuth mock.
            new("Mock:ApiKey", ""),
        ]);
        PlainMock = await MockUpstreamServer.StartAsync();

        await File.WriteAllTextAsync(Path.Combine(SamplesDir, "user.yaml"), """
            apiVersion: tokengate.io/v1alpha1
            kind: UserQuota
            metadata: { name: oauth-user, namespace: default }
            spec:
              user: { name: oauth-user, email: oauth-user@example.com }
              grants: [ { id: g1, amount: 1000, reason: test } ]
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: oauth-key, namespace: default }
            spec: { owner: oauth-user }
            """);

        var redisPrefix = RedisPrefix;
        // Debug for every category the hosts' defaults quieten (LoggingDefaults), the framework's and the drivers' included.
        string[] logging = _captureLogs
            ? [.. new[] { "Default", "Microsoft", "Microsoft.Hosting.Lifetime", "Microsoft.AspNetCore", "Microsoft.EntityFrameworkCore", "System.Net.Http.HttpClient", "Npgsql" }
                .SelectMany(c => new[] { "--Logging:LogLevel:" + c, "Debug" })]
            : [];
        string[] common =
        [
            "--ConnectionStrings:Postgres", Database.ConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:PepperFile", pepperFile,
            "--TokenGate:Credentials:KeysDirectory", credentialKeys,
            "--TokenGate:Redis:KeyPrefix", redisPrefix,
            "--TokenGate:PricesDirectory", RepoPaths.Prices,
            .. logging,
        ];
        var op = OperatorApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--source", "dir:" + SamplesDir, "--state-dir", Path.Combine(root, "state"),
            "--TokenGate:OAuth:CheckInterval", "00:00:00.200", "--TokenGate:OAuth:MinBackoff", "00:00:00.500", "--TokenGate:OAuth:MaxBackoff", "00:00:02"]);
        var operatorUrl = OperatorUrl = await StartAsync(op, Logs[0]);
        Source = op.Services.GetRequiredService<FileResourceSource>();

        var proxy = ProxyApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0", .. proxyArgs]);
        await StartAsync(proxy, Logs[1]);
        ProxyUrl = proxy.Services.GetRequiredService<Listeners>().PublicUrls[0];
        ProxyManagementUrl = proxy.Services.GetRequiredService<Listeners>().ManagementUrls[0];

        using var http = new HttpClient();
        foreach (var ready in new[] { new Uri(operatorUrl, "readyz"), new Uri(ProxyUrl, "readyz") })
            await Eventually.TrueAsync(async () => (await http.GetAsync(ready)).IsSuccessStatusCode, $"{ready} to report ready");
    }

    /// <summary>Signs <paramref name="account"/> in at the OAuth mock and declares its Secret and UpstreamAccount.</summary>
    public async Task AddOAuthAccountAsync(string account, string refreshBefore, int priority = 0)
    {
        var t = await OAuthMock.SignInAsync(account);
        var auth = new JsonObject
        {
            ["type"] = "codex",
            ["access_token"] = t.AccessToken,
            ["refresh_token"] = t.RefreshToken,
            ["expired"] = DateTimeOffset.UtcNow.AddSeconds(t.ExpiresInSeconds).ToString("O", CultureInfo.InvariantCulture),
        }.ToJsonString();
        await File.WriteAllTextAsync(Path.Combine(SamplesDir, account + ".yaml"), $"""
            # {account}: an OAuth subscription account (the operator rewrites the Secret when it refreshes)
            apiVersion: v1
            kind: Secret
            metadata: {"{"} name: {account}-auth, namespace: default {"}"}
            stringData:
              auth.json: '{auth}'
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata: {"{"} name: {account}, namespace: default {"}"}
            spec:
              provider: openai-compatible
              baseUrl: {OAuthMock.OpenAIBaseUrl}
              credentials:
                oauth:
                  secretRef: {"{"} name: {account}-auth {"}"}
                  tokenUrl: {OAuthMock.TokenUrl}
                  clientId: {ClientId}
                  refreshBefore: {refreshBefore}
              models: [ {"{"} name: gpt-4o-mini {"}"} ]
              priority: {priority}
            """);
    }

    /// <summary>Declares an API-key account on the plain mock.</summary>
    public async Task AddPlainAccountAsync(string account, int priority) =>
        await File.WriteAllTextAsync(Path.Combine(SamplesDir, account + ".yaml"), $"""
            apiVersion: v1
            kind: Secret
            metadata: {"{"} name: {account}-key, namespace: default {"}"}
            stringData: {"{"} apiKey: {PlainMock.ApiKey} {"}"}
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata: {"{"} name: {account}, namespace: default {"}"}
            spec:
              provider: openai-compatible
              baseUrl: {PlainMock.OpenAIBaseUrl}
              credentials:
                apiKeySecretRef: {"{"} name: {account}-key, key: apiKey {"}"}
              models: [ {"{"} name: gpt-4o-mini {"}"} ]
              priority: {priority}
            """);

    public UpstreamAccountStatus? Status(string account) => Source.ReadStatus<UpstreamAccountStatus>("UpstreamAccount", "default", account);

    /// <summary>The key the operator issued for the stack's user.</summary>
    public Task<string> KeyAsync() => Eventually.ReturnsAsync(async () =>
    {
        var s = await Source.GetSecretAsync("default", "oauth-key-apikey", CancellationToken.None);
        return s is null ? null : Encoding.UTF8.GetString(s["OPENAI_API_KEY"]);
    }, "the operator to issue the key");

    public static HttpRequestMessage Chat(string key)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json"),
        };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return req;
    }

    private async Task<Uri> StartAsync(WebApplication app, CapturingLoggerProvider logs)
    {
        _apps.Add(app);
        // Added to the built factory: the hosts clear their providers while composing, after any callback.
        if (_captureLogs) app.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        await app.StartAsync();
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        await OAuthMock.DisposeAsync();
        await PlainMock.DisposeAsync();
        await Database.DisposeAsync();
        try { Directory.Delete(Path.GetDirectoryName(SamplesDir)!, recursive: true); } catch (IOException) { }
    }
}
