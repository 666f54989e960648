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
/// An API server (the fake, or a real one with the operator's RBAC: <see cref="IKubeTestCluster"/>) with the
/// TokenGate CRDs, a throw-away PostgreSQL database, a unique Redis prefix, and real operator hosts started
/// with <c>--source kubernetes --kubeconfig</c> under the cluster's operator identity.
/// </summary>
public sealed class KubernetesHarness : IAsyncDisposable
{
    public const string Pepper = "k8s-test-pepper-0123456789abcdef";
    private readonly List<WebApplication> _apps = [];
    private readonly HashSet<string> _namespaces = new(StringComparer.Ordinal);

    private KubernetesHarness(IKubeTestCluster cluster, TestDatabase db, RespClient redis)
    {
        Cluster = cluster;
        Database = db;
        Redis = redis;
        Keys = new ProjectionKeys(TestEnvironment.UniqueRedisPrefix());
        Hasher = new KeyHasher(Encoding.UTF8.GetBytes(Pepper));
    }

    public IKubeTestCluster Cluster { get; }
    public TestDatabase Database { get; }
    public RespClient Redis { get; }
    public ProjectionKeys Keys { get; }
    public KeyHasher Hasher { get; }
    /// <summary>What kubectl would be: a separate (admin) client to the same API server.</summary>
    public KubernetesClient Client => Cluster.Admin;
    /// <summary>The admin's kubeconfig (for kubectl); the operator runs with <see cref="IKubeTestCluster.OperatorKubeconfigPath"/>.</summary>
    public string KubeconfigPath => Cluster.AdminKubeconfigPath;

    public ResourceClient<JsonObject> ApiKeys => Client.Resource<JsonObject>(TokenGateResources.ApiKeys);
    public ResourceClient<JsonObject> UserQuotas => Client.Resource<JsonObject>(TokenGateResources.UserQuotas);
    public ResourceClient<JsonObject> UpstreamAccounts => Client.Resource<JsonObject>(TokenGateResources.UpstreamAccounts);
    public ResourceClient<Secret> Secrets => Client.Resource<Secret>(ResourceDefinition.Secrets);

    /// <summary>A fresh fake API server serving the committed CRDs.</summary>
    public static async Task<IKubeTestCluster> FakeClusterAsync() =>
        await FakeKubeCluster.StartAsync(Path.Combine(RepoPaths.Root, "config", "crd"));

    public static async Task<KubernetesHarness> StartAsync(IKubeTestCluster cluster)
    {
        var db = await TestDatabase.CreateAsync();
        var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        return new KubernetesHarness(cluster, db, redis);
    }

    /// <summary>Starts an operator replica (short lease settings so hand-over tests are quick).</summary>
    public async Task<WebApplication> StartOperatorAsync(params string[] extra)
    {
        string[] args =
        [
            "--urls", "http://127.0.0.1:0",
            "--source", "kubernetes",
            "--kubeconfig", Cluster.OperatorKubeconfigPath,
            "--ConnectionStrings:Postgres", Database.ConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:Pepper", Pepper,
            .. TestCredentialKeys.Args,
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
        var ns = doc["metadata"]?["namespace"]?.GetValue<string>() ?? "default";
        if (_namespaces.Add(ns)) await Cluster.EnsureNamespaceAsync(ns);
        var resource = kind == "Secret" ? Client.Resource<JsonObject>(ResourceDefinition.Secrets) : Client.Resource<JsonObject>(TokenGateResources.ForKind(kind));
        await resource.CreateAsync(doc, ns);
    }

    public static JsonObject Yaml(string yaml) => FakeCrdSchema.ParseYaml(yaml).Single();

    /// <summary>The object as the API server stores it (null when absent).</summary>
    public Task<JsonObject?> GetAsync(ResourceDefinition type, string name, string ns = "default") =>
        Client.Resource<JsonObject>(type).TryGetAsync(ns, name);

    /// <summary>The objects of a type in a namespace, as the API server lists them.</summary>
    public async Task<IReadOnlyList<JsonObject>> ListAsync(ResourceDefinition type, string ns = "default") =>
        [.. (await Client.Resource<JsonObject>(type).ListAllAsync(ns)).Items];

    public static JsonObject? Condition(JsonObject? obj, string type) =>
        (obj?["status"]?["conditions"] as JsonArray)?.OfType<JsonObject>().FirstOrDefault(c => c["type"]?.GetValue<string>() == type);

    /// <summary>Awaits Ready=True with status.observedGeneration equal to metadata.generation.</summary>
    public Task<JsonObject> ReadyAsync(ResourceDefinition type, string name, string ns = "default") =>
        Eventually.ReturnsAsync(async () =>
        {
            var o = await GetAsync(type, name, ns);
            var ready = Condition(o, "Ready");
            var fresh = o?["status"]?["observedGeneration"]?.GetValue<long>() == o?["metadata"]?["generation"]?.GetValue<long>();
            return ready?["status"]?.GetValue<string>() == "True" && fresh ? o : null;
        }, $"{type.Kind} {ns}/{name} to be Ready", TimeSpan.FromSeconds(30));

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
        await Cluster.DisposeAsync();
        await Redis.DisposeAsync();
        await Database.DisposeAsync();
    }
}
