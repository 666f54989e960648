using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Keys;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Hosting;
using Gateway.Operator.Kubernetes;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Gateway.Testing.Kubernetes;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// A fake API server serving the committed CRDs (with their schema enforced), a throw-away PostgreSQL
/// database, a unique Redis prefix and a kubeconfig pointing at the fake; starts real operator hosts with
/// <c>--source kubernetes --kubeconfig</c>.
/// </summary>
public sealed class KubernetesHarness : IAsyncDisposable
{
    public const string Pepper = "k8s-test-pepper-0123456789abcdef";
    private readonly List<WebApplication> _apps = [];
    private readonly string _dir;

    private KubernetesHarness(FakeApiServer server, TestDatabase db, RespClient redis, string dir)
    {
        Server = server;
        Database = db;
        Redis = redis;
        _dir = dir;
        Keys = new ProjectionKeys(TestEnvironment.UniqueRedisPrefix());
        Hasher = new KeyHasher(Encoding.UTF8.GetBytes(Pepper));
        Client = new KubernetesClient(new KubernetesClientConfiguration { Server = server.BaseAddress, RequestTimeout = TimeSpan.FromSeconds(10) });
        KubeconfigPath = Path.Combine(dir, "kubeconfig");
        File.WriteAllText(KubeconfigPath, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {server.BaseAddress.ToString().TrimEnd('/')}
            users:
            - name: tester
              user: {"{}"}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: tester
                namespace: default
            current-context: fake
            """);
    }

    public FakeApiServer Server { get; }
    public TestDatabase Database { get; }
    public RespClient Redis { get; }
    public ProjectionKeys Keys { get; }
    public KeyHasher Hasher { get; }
    /// <summary>What kubectl would be: a separate client to the same API server.</summary>
    public KubernetesClient Client { get; }
    public string KubeconfigPath { get; }

    public ResourceClient<JsonObject> ApiKeys => Client.Resource<JsonObject>(TokenGateResources.ApiKeys);
    public ResourceClient<JsonObject> UserQuotas => Client.Resource<JsonObject>(TokenGateResources.UserQuotas);
    public ResourceClient<JsonObject> UpstreamAccounts => Client.Resource<JsonObject>(TokenGateResources.UpstreamAccounts);
    public ResourceClient<Secret> Secrets => Client.Resource<Secret>(ResourceDefinition.Secrets);

    public static async Task<KubernetesHarness> StartAsync()
    {
        var server = await FakeApiServer.StartAsync(s =>
        {
            s.BookmarkInterval = TimeSpan.FromMilliseconds(200);
            s.RegisterCrdsFromDirectory(Path.Combine(RepoPaths.Root, "config", "crd"));
        });
        var db = await TestDatabase.CreateAsync();
        var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        var dir = Path.Combine(Path.GetTempPath(), "tg-k8s-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return new KubernetesHarness(server, db, redis, dir);
    }

    /// <summary>Starts an operator replica against the fake (short lease settings so hand-over tests are quick).</summary>
    public async Task<WebApplication> StartOperatorAsync(params string[] extra)
    {
        string[] args =
        [
            "--urls", "http://127.0.0.1:0",
            "--source", "kubernetes",
            "--kubeconfig", KubeconfigPath,
            "--ConnectionStrings:Postgres", Database.ConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:Pepper", Pepper,
            "--TokenGate:Redis:KeyPrefix", Keys.Prefix,
            "--TokenGate:Kubernetes:LeaseDuration", "00:00:03",
            "--TokenGate:Kubernetes:RenewDeadline", "00:00:02",
            "--TokenGate:Kubernetes:RetryPeriod", "00:00:00.250",
            "--TokenGate:Kubernetes:ProjectionCheckInterval", "00:00:00.250",
            .. extra,
        ];
        var app = OperatorApp.Build(args);
        _apps.Add(app);
        await app.StartAsync();
        return app;
    }

    /// <summary>Operator hosts started and not stopped yet.</summary>
    public IReadOnlyList<WebApplication> Apps => _apps;

    public static KubernetesOperator OperatorOf(WebApplication app) => app.Services.GetRequiredService<KubernetesOperator>();

    public async Task StopAsync(WebApplication app)
    {
        _apps.Remove(app);
        await app.StopAsync();
        await app.DisposeAsync();
    }

    /// <summary>Creates every object of config/samples as `kubectl apply -f config/samples/` would.</summary>
    public async Task ApplySamplesAsync()
    {
        foreach (var file in Directory.GetFiles(RepoPaths.Samples, "*.yaml").Order(StringComparer.Ordinal))
        {
            foreach (var doc in FakeCrdSchema.ParseYaml(await File.ReadAllTextAsync(file))) await ApplyAsync(doc);
        }
    }

    public async Task ApplyAsync(JsonObject doc)
    {
        var kind = doc["kind"]!.GetValue<string>();
        if (kind == "Kustomization") return;
        var resource = kind == "Secret" ? Client.Resource<JsonObject>(ResourceDefinition.Secrets) : Client.Resource<JsonObject>(TokenGateResources.ForKind(kind));
        await resource.CreateAsync(doc, doc["metadata"]?["namespace"]?.GetValue<string>() ?? "default");
    }

    public static JsonObject Yaml(string yaml) => FakeCrdSchema.ParseYaml(yaml).Single();

    /// <summary>The object as the API server stores it.</summary>
    public JsonObject? Get(FakeResourceType type, string name, string ns = "default") => Server.GetObject(type, ns, name);

    public static JsonObject? Condition(JsonObject? obj, string type) =>
        (obj?["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == type);

    /// <summary>Awaits Ready=True with status.observedGeneration equal to metadata.generation.</summary>
    public Task<JsonObject> ReadyAsync(FakeResourceType type, string name, string ns = "default") =>
        Eventually.ReturnsAsync(() =>
        {
            var o = Get(type, name, ns);
            var ready = Condition(o, "Ready");
            var fresh = o?["status"]?["observedGeneration"]?.GetValue<long>() == o?["metadata"]?["generation"]?.GetValue<long>();
            return Task.FromResult(ready?["status"]?.GetValue<string>() == "True" && fresh ? o : null);
        }, $"{type.Kind} {ns}/{name} to be Ready", TimeSpan.FromSeconds(20));

    /// <summary>The plaintext key in the ApiKey's Secret, once it differs from <paramref name="not"/>.</summary>
    public Task<string> IssuedKeyAsync(string secretName = "demo-apikey", string? not = null) =>
        Eventually.ReturnsAsync(async () =>
        {
            var s = await Secrets.TryGetAsync("default", secretName);
            var key = s?.Data?.GetValueOrDefault("OPENAI_API_KEY") is { } b ? Encoding.UTF8.GetString(b) : null;
            return key is not null && key != not ? key : null;
        }, $"a key in Secret {secretName}", TimeSpan.FromSeconds(20));

    public TokenGateDbContext Db() => new(new DbContextOptionsBuilder<TokenGateDbContext>().UseNpgsql(Database.ConnectionString).Options);

    public async Task<bool> RedisHasKeyAsync(string plaintext) =>
        (await Redis.ExecuteAsync("EXISTS", [Keys.Key(Hasher.Hash(plaintext))])).AsInt64() == 1;

    public async ValueTask DisposeAsync()
    {
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        Client.Dispose();
        await Server.DisposeAsync();
        await Redis.DisposeAsync();
        await Database.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
