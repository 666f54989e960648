using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Publish;

/// <summary>
/// The chart and the binaries agree: each `dotnet publish -c Release` output, started with exactly the command,
/// args, env, working directory, volumes and user of its rendered Deployment (Secrets given local values: a
/// throw-away database, a unique Redis prefix, a fresh pepper and credential key), becomes ready on its probe port and serves.
/// </summary>
public sealed class PublishedProcessTests(PublishedApps apps) : IClassFixture<PublishedApps>
{
    private const string RedisPrefix = "TokenGate__Redis__KeyPrefix";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);
    private readonly string _pepper = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private readonly string _credentialKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();

    private JsonObject Deployment(string component) => apps.Chart.Get("Deployment", "tokengate-" + component);

    private PodProcess Start(string component, TestDatabase db, FakeCluster? cluster = null)
    {
        var work = Path.Combine(apps.Root, $"pod-{component}-{Guid.NewGuid():N}"[..24]);
        Directory.CreateDirectory(work);
        return PodProcess.Start(Deployment(component), new PodInputs
        {
            AppDirectory = apps.AppDirectory(component),
            WorkDirectory = work,
            Secrets =
            {
                [("tokengate-postgres", "connectionString")] = db.ConnectionString,
                [("tokengate-redis", "connectionString")] = TestEnvironment.Redis,
                [("tokengate-pepper", "pepper")] = _pepper,
                // The chart's generated credential keys Secret: one key and the active key id.
                [("tokengate-credential-keys", "k1")] = _credentialKey,
                [("tokengate-credential-keys", "active")] = "k1",
            },
            Fields = { ["metadata.name"] = $"tokengate-{component}-5f7c9d-x2k4q", ["metadata.namespace"] = "tokengate-system" },
            // Only where the chart sets it (the portal does not use Redis).
            Overrides = Env(Container(Deployment(component))).ContainsKey(RedisPrefix) ? new() { [RedisPrefix] = _prefix } : [],
            Injected = cluster is null ? [] : new() { ["KUBECONFIG"] = cluster.KubeconfigPath },
        });
    }

    /// <summary>The process runs as the pod's user with no privileges and cannot write its working directory.</summary>
    private async Task AssertUnprivilegedAsync(PodProcess pod, string component)
    {
        var d = Deployment(component);
        var (uid, gid) = PodProcess.User(PodSpec(d), Container(d));
        var status = pod.Status();
        Assert.Equal($"{uid}\t{uid}\t{uid}\t{uid}", status["Uid"]);
        Assert.Equal($"{gid}\t{gid}\t{gid}\t{gid}", status["Gid"]);
        Assert.Equal("1", status["NoNewPrivs"]);
        Assert.Equal("0000000000000000", status["CapEff"]);
        Assert.Equal("0000000000000000", status["CapBnd"]);
        if (Environment.IsPrivilegedProcess)
        {
            var (code, _) = await PublishedApps.TryRunAsync("setpriv", [.. PodProcess.SetprivArgs(uid, gid), "--", "test", "-w", apps.AppDirectory(component)]);
            Assert.NotEqual(0, code);
        }
    }

    private static async Task<string> GetAsync(Uri url, HttpStatusCode expected, string? bearer = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (bearer is not null) request.Headers.Authorization = new("Bearer", bearer);
        using var response = await http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"GET {url}: {(int)response.StatusCode} {body}");
        return body;
    }

    private static int Port(PodProcess pod, string probe) => pod.Container[probe]!["httpGet"]!["port"]!.GetValue<int>();

    private static int PublicPort(PodProcess pod) =>
        pod.Container["ports"]!.AsArray().Single(p => p!["name"]!.GetValue<string>() == "http")!["containerPort"]!.GetValue<int>();

    private static string SecretValue(FakeCluster cluster, string name, string key)
    {
        var secret = cluster.Server.GetObject(FakeApiServer.Secrets, "default", name)!;
        return Encoding.UTF8.GetString(Convert.FromBase64String(secret["data"]![key]!.GetValue<string>()));
    }

    private async Task<string> IssuedKeyAsync(FakeCluster cluster) =>
        await Eventually.ReturnsAsync(() => Task.FromResult(cluster.Server.GetObject(FakeApiServer.Secrets, "default", "demo-apikey") is null
            ? null : SecretValue(cluster, "demo-apikey", "OPENAI_API_KEY")), "the operator to issue the demo key", StartTimeout);

    [Fact]
    public async Task Operator_starts_as_rendered_takes_the_lease_in_its_namespace_and_issues_keys_with_the_charts_URLs()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var cluster = await FakeCluster.StartAsync(apps.Root);
        await using var op = Start("operator", db, cluster);
        await op.WaitReadyAsync(StartTimeout);
        await AssertUnprivilegedAsync(op, "operator");
        Assert.Contains("# TYPE ", await GetAsync(op.Url(Port(op, "livenessProbe"), "/metrics"), HttpStatusCode.OK), StringComparison.Ordinal);

        // The Lease is in the pod's namespace (downward API), where the chart's leader-election Role grants it.
        var lease = await Eventually.ReturnsAsync(() => Task.FromResult(cluster.Server.GetObject(FakeApiServer.Leases, "tokengate-system", "tokengate-operator")),
            "the operator's Lease", StartTimeout);
        Assert.StartsWith("tokengate-operator-5f7c9d-x2k4q", lease["spec"]!["holderIdentity"]!.GetValue<string>(), StringComparison.Ordinal);

        // Issued key and invite carry the in-cluster URLs the chart computed.
        await IssuedKeyAsync(cluster);
        var env = Env(op.Container);
        Assert.Equal(env["TokenGate__PublicBaseUrl"]["value"]!.GetValue<string>() + "/v1", SecretValue(cluster, "demo-apikey", "OPENAI_BASE_URL"));
        var invite = await Eventually.ReturnsAsync(() => Task.FromResult(cluster.Server.GetObject(FakeApiServer.Secrets, "default", "demo-invite")), "the invite", StartTimeout);
        Assert.StartsWith(env["TokenGate__PortalBaseUrl"]["value"]!.GetValue<string>() + "/invite/",
            Encoding.UTF8.GetString(Convert.FromBase64String(invite["data"]!["INVITE_URL"]!.GetValue<string>())), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Proxy_starts_as_rendered_and_serves_models_to_a_key_the_operator_issued()
    {
        await using var db = await TestDatabase.CreateAsync();
        await using var cluster = await FakeCluster.StartAsync(apps.Root);
        await using var op = Start("operator", db, cluster);
        await using var proxy = Start("proxy", db);
        await proxy.WaitReadyAsync(StartTimeout);
        await AssertUnprivilegedAsync(proxy, "proxy");
        Assert.Contains("# TYPE ", await GetAsync(proxy.Url(Port(proxy, "readinessProbe"), "/metrics"), HttpStatusCode.OK), StringComparison.Ordinal);

        var publicPort = PublicPort(proxy);
        // Until the operator has built the projection no key can be judged (503, retry); then an unknown one is invalid.
        var rejected = JsonNode.Parse(await Eventually.ReturnsAsync(async () =>
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url(publicPort, "/v1/models"));
            request.Headers.Authorization = new("Bearer", "tg-" + new string('x', 43));
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.ServiceUnavailable, $"{(int)response.StatusCode} {body}");
            return response.StatusCode == HttpStatusCode.Unauthorized ? body : null;
        }, "an unknown key to be refused as invalid", StartTimeout))!;
        Assert.Equal("invalid_api_key", rejected["error"]!["code"]!.GetValue<string>());

        // Same pepper (Secret volume) and Redis prefix in both processes: the operator's key works at the proxy.
        var key = await IssuedKeyAsync(cluster);
        var models = await Eventually.ReturnsAsync(async () =>
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, proxy.Url(publicPort, "/v1/models"));
            request.Headers.Authorization = new("Bearer", key);
            using var response = await http.SendAsync(request);
            return response.StatusCode == HttpStatusCode.OK ? await response.Content.ReadAsStringAsync() : null;
        }, "the proxy to accept the issued key", StartTimeout);
        Assert.Contains("\"gpt-4o-mini\"", models, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Portal_starts_as_rendered_and_serves_the_sign_in_page()
    {
        await using var db = await TestDatabase.CreateAsync();
        // In a cluster the operator migrates the schema; the portal is ready only once it is there.
        await Gateway.Core.Storage.StorageServiceCollectionExtensions.MigrateAsync(db.ConnectionString);
        await using var portal = Start("portal", db);
        await portal.WaitReadyAsync(StartTimeout);
        await AssertUnprivilegedAsync(portal, "portal");
        var page = await GetAsync(portal.Url(PublicPort(portal), "/signin"), HttpStatusCode.OK);
        Assert.Contains("<form", page, StringComparison.Ordinal);
        Assert.Contains("# TYPE ", await GetAsync(portal.Url(Port(portal, "readinessProbe"), "/metrics"), HttpStatusCode.OK), StringComparison.Ordinal);
    }
}
