using System.Text;
using System.Text.Json.Nodes;
using Gateway.Core.Hosting;
using Gateway.Kubernetes.Client;
using Gateway.MockUpstream;
using Gateway.Operator.Kubernetes;
using Gateway.Proxy;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// TokenGate as a cluster runs it, on one machine: the fake API server with the CRDs, operator replicas as processes
/// with the Kubernetes source and leader election (<see cref="OperatorProcess"/>), the proxy and the mock upstream
/// in-process, a throw-away PostgreSQL database and a unique Redis prefix. The objects are the sample upstream account
/// (pointed at the mock) and the fault runs' <c>chaos</c> user (no rate limits, a $1,000 grant) with its key.
/// </summary>
public sealed class KubernetesFaultStack : IAsyncDisposable
{
    /// <summary>The lease settings of every replica: short, so a takeover takes seconds (defaults: 15 s, 10 s, 2 s).</summary>
    public static readonly TimeSpan LeaseDuration = TimeSpan.FromSeconds(4);
    private static readonly TimeSpan RenewDeadline = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan RetryPeriod = TimeSpan.FromMilliseconds(500);
    public const string LeaseName = "tokengate-operator";

    private readonly List<WebApplication> _apps = [];
    private readonly List<OperatorProcess> _operators = [];
    private string _root = null!;
    private string[] _operatorArgs = [];

    private KubernetesFaultStack(FakeKubeCluster cluster, TestDatabase database)
    {
        Cluster = cluster;
        Database = database;
    }

    public FakeKubeCluster Cluster { get; }
    public TestDatabase Database { get; }
    public string RedisPrefix { get; } = TestEnvironment.UniqueRedisPrefix();
    public Uri ProxyUrl { get; private set; } = null!;

    public ResourceClient<JsonObject> UserQuotas => Cluster.Admin.Resource<JsonObject>(TokenGateResources.UserQuotas);

    public static async Task<KubernetesFaultStack> StartAsync()
    {
        var cluster = await FakeKubeCluster.StartAsync(Path.Combine(RepoPaths.Root, "config", "crd"));
        var stack = new KubernetesFaultStack(cluster, await TestDatabase.CreateAsync());
        try
        {
            await stack.StartInternalAsync();
            return stack;
        }
        catch
        {
            await stack.DisposeAsync();
            throw;
        }
    }

    private async Task StartInternalAsync()
    {
        _root = Path.Combine(Path.GetTempPath(), "tg-leaderkill-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_root);
        var pepperFile = Path.Combine(_root, "pepper");
        await File.WriteAllTextAsync(pepperFile, "leaderkill-pepper-" + Guid.NewGuid().ToString("N"));
        var keysDir = TestCredentialKeys.WriteDirectory(_root);
        string[] common =
        [
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:PepperFile", pepperFile,
            "--TokenGate:Credentials:KeysDirectory", keysDir,
            "--TokenGate:Redis:KeyPrefix", RedisPrefix,
            "--TokenGate:PricesDirectory", RepoPaths.Prices,
        ];
        _operatorArgs =
        [
            .. common,
            "--ConnectionStrings:Postgres", Database.ConnectionString,
            "--source", "kubernetes",
            "--kubeconfig", Cluster.OperatorKubeconfigPath,
            "--TokenGate:Kubernetes:LeaseDuration", LeaseDuration.ToString(),
            "--TokenGate:Kubernetes:RenewDeadline", RenewDeadline.ToString(),
            "--TokenGate:Kubernetes:RetryPeriod", RetryPeriod.ToString(),
        ];

        var mockUrl = await StartAsync(MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"]));
        var proxy = ProxyApp.Build([.. common, "--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://127.0.0.1:0"]);
        await StartAsync(proxy);
        ProxyUrl = proxy.Services.GetRequiredService<Listeners>().PublicUrls[0];

        // As `kubectl apply`: the sample upstream account (and its credentials Secret) pointed at the mock, and the user.
        var upstream = (await File.ReadAllTextAsync(Path.Combine(RepoPaths.Samples, "upstreamaccount-mock.yaml")))
            .Replace("http://127.0.0.1:8089", mockUrl.ToString().TrimEnd('/'), StringComparison.Ordinal);
        foreach (var doc in FakeCrdSchema.ParseYaml(upstream + "\n---\n" + """
            apiVersion: tokengate.io/v1alpha1
            kind: UserQuota
            metadata: { name: chaos, namespace: default }
            spec:
              user: { name: chaos, email: chaos@example.com }
              grants: [ { id: chaos-load, amount: 1000, reason: fault runs } ]
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: chaos, namespace: default }
            spec: { owner: chaos }
            """))
        {
            var kind = doc["kind"]!.GetValue<string>();
            var type = kind == "Secret" ? ResourceDefinition.Secrets : TokenGateResources.ForKind(kind);
            await Cluster.Admin.Resource<JsonObject>(type).CreateAsync(doc, "default");
        }
    }

    private async Task<Uri> StartAsync(WebApplication app)
    {
        _apps.Add(app);
        await app.StartAsync();
        return new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");
    }

    /// <summary>Starts an operator replica (a new pod named <paramref name="name"/>) and waits until it is ready.</summary>
    public async Task<OperatorProcess> StartOperatorAsync(string name)
    {
        var replica = await OperatorProcess.StartAsync(name, _operatorArgs);
        _operators.Add(replica);
        return replica;
    }

    /// <summary>The leader election Lease (in the operator's namespace), null before the first election.</summary>
    public Task<Lease?> LeaseAsync() =>
        Cluster.Admin.Resource<Lease>(ResourceDefinition.Leases).TryGetAsync(Cluster.OperatorNamespace, LeaseName);

    /// <summary>The key the operator issued into the chaos key's Secret.</summary>
    public Task<string> KeyAsync() => Eventually.ReturnsAsync(async () =>
    {
        var secret = await Cluster.Admin.Resource<Secret>(ResourceDefinition.Secrets).TryGetAsync("default", "chaos-apikey");
        return secret?.Data?.GetValueOrDefault("OPENAI_API_KEY") is { } b ? Encoding.UTF8.GetString(b) : null;
    }, "the operator to issue the chaos key");

    /// <summary>Adds a grant to the chaos user, as `kubectl edit` would (a merge patch of the whole list).</summary>
    public async Task AddGrantAsync(string id, decimal amount)
    {
        var uq = await UserQuotas.GetAsync("default", "chaos");
        var grants = (JsonArray)uq["spec"]!["grants"]!.DeepClone();
        grants.Add(new JsonObject { ["id"] = id, ["amount"] = amount, ["reason"] = "leader kill run" });
        await UserQuotas.PatchAsync("default", "chaos", new JsonObject { ["spec"] = new JsonObject { ["grants"] = grants } });
    }

    /// <summary>The chaos user's id in PostgreSQL (null until the operator has reconciled it).</summary>
    public async Task<string?> UserIdAsync()
    {
        await using var connection = new NpgsqlConnection(Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT id::text FROM users WHERE namespace = 'default' AND name = 'chaos'", connection);
        return await command.ExecuteScalarAsync() as string;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var o in _operators) o.Dispose();
        for (var i = _apps.Count - 1; i >= 0; i--)
        {
            await _apps[i].StopAsync();
            await _apps[i].DisposeAsync();
        }
        await Cluster.DisposeAsync();
        await Database.DisposeAsync();
        if (_root is not null) try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}
