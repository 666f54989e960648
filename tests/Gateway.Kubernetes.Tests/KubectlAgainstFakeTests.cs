using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Kubernetes.Tests;

/// <summary>
/// The real kubectl (from Debian) against the fake — and, with KUBEBUILDER_ASSETS, against a real API server
/// serving the same CRDs, so the fake's discovery, tables and OpenAPI are checked against the real thing:
/// short names, categories, printer columns, explain, apply, validation errors, finalizers.
/// </summary>
public abstract class KubectlAgainstFakeTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tg-kubectl-").FullName;
    private IKubeTestCluster _cluster = null!;
    private KubernetesClient _client = null!;

    public sealed class Fake : KubectlAgainstFakeTests
    {
        protected override async Task<IKubeTestCluster> StartClusterAsync() =>
            await FakeKubeCluster.StartAsync(Path.Combine(RepoPaths.Root, "config", "crd"));
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : KubectlAgainstFakeTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    public async Task InitializeAsync()
    {
        _cluster = await StartClusterAsync();
        _client = _cluster.Admin;
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private ResourceClient<JsonObject> ApiKeys => _client.Resource<JsonObject>(new ResourceDefinition("tokengate.io", "v1alpha1", "apikeys", "ApiKey"));

    private Task<JsonObject?> GetAsync(string plural, string kind, string name) =>
        _client.Resource<JsonObject>(new ResourceDefinition("tokengate.io", "v1alpha1", plural, kind)).TryGetAsync("default", name);

    private Task<string> Kubectl(params string[] args) =>
        new KubectlRunner(_cluster.AdminKubeconfigPath, Path.Combine(_dir, "cache")).RunAsync(args);

    [KubeFact]
    public async Task Kubectl_get_shows_printer_columns_by_short_name_and_category()
    {
        var apiKeys = ApiKeys;
        foreach (var obj in FakeCrdSchema.ParseYaml(File.ReadAllText(Path.Combine(RepoPaths.Samples, "apikey-demo.yaml"))))
        {
            await apiKeys.CreateAsync(obj);
        }
        await apiKeys.PatchStatusAsync("default", "demo", JsonNode.Parse("""
            {"status":{"keyPrefix":"tg-Ab12","spend":1.25,"conditions":[
              {"type":"Ready","status":"True","reason":"Issued","message":"ok","lastTransitionTime":"2026-01-01T00:00:00Z","observedGeneration":1}]}}
            """)!);

        var table = await Kubectl("get", "ak");
        var lines = table.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Matches(@"^NAME\s+OWNER\s+PREFIX\s+READY\s+LAST USED\s+SPEND\s+AGE", lines[0]);
        // Missing values (Last Used) are null cells, which kubectl prints blank.
        Assert.Matches(@"^demo\s+demo\s+tg-Ab12\s+True\s+1\.25\s+\d+s", lines[1]);

        var byCategory = await Kubectl("get", "tokengate");
        Assert.Contains("apikey.tokengate.io/demo", byCategory, StringComparison.Ordinal);

        var yaml = await Kubectl("get", "apikey", "demo", "-o", "jsonpath={.spec.owner}/{.metadata.generation}");
        Assert.Equal("demo/1", yaml);

        await Kubectl("delete", "ak", "demo");
        Assert.Null(await GetAsync("apikeys", "ApiKey", "demo"));
    }

    [KubeFact]
    public async Task Kubectl_apply_creates_the_samples_and_reapplies_unchanged()
    {
        var created = await Kubectl("apply", "-f", RepoPaths.Samples);
        Assert.Contains("apikey.tokengate.io/demo created", created, StringComparison.Ordinal);
        Assert.Contains("secret/mock-upstream-credentials created", created, StringComparison.Ordinal);
        Assert.NotNull(await GetAsync("userquotas", "UserQuota", "demo"));

        var again = await Kubectl("apply", "-f", RepoPaths.Samples);
        Assert.Contains("apikey.tokengate.io/demo unchanged", again, StringComparison.Ordinal);
    }

    [KubeFact]
    public async Task Kubectl_explain_reads_the_crd_descriptions()
    {
        var spec = await Kubectl("explain", "apikey.spec");
        Assert.Contains("Desired state of the ApiKey.", spec, StringComparison.Ordinal);
        Assert.Matches(@"owner\s+<string> -required-", spec);
        Assert.Contains("Name of the owning UserQuota in the same namespace.", spec, StringComparison.Ordinal);

        var field = await Kubectl("explain", "ak.spec.rotation.gracePeriod");
        Assert.Contains("How long the previous key version stays valid", field, StringComparison.Ordinal);
    }

    [KubeFact]
    public async Task Kubectl_apply_of_an_invalid_spec_is_rejected_with_the_field()
    {
        var file = Path.Combine(_dir, "bad.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: {name: bad, namespace: default}
            spec: {owner: demo, discountRate: 3}
            """);
        var (exitCode, _, stderr) = await new KubectlRunner(_cluster.AdminKubeconfigPath, Path.Combine(_dir, "cache")).TryRunAsync("apply", "-f", file);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("spec.discountRate", stderr, StringComparison.Ordinal);
        Assert.Contains("less than or equal to 1", stderr, StringComparison.Ordinal);
    }

    [KubeFact]
    public async Task Kubectl_delete_waits_for_the_finalizer_and_completes_when_it_is_removed()
    {
        var apiKeys = ApiKeys;
        var obj = FakeCrdSchema.ParseYaml(File.ReadAllText(Path.Combine(RepoPaths.Samples, "apikey-demo.yaml")))[0];
        obj["metadata"]!["finalizers"] = new JsonArray("tokengate.io/finalizer");
        await apiKeys.CreateAsync(obj);

        var deleting = Kubectl("delete", "ak", "demo", "--timeout=30s");
        await Eventually.TrueAsync(async () => (await GetAsync("apikeys", "ApiKey", "demo"))?["metadata"]?["deletionTimestamp"] is not null, "deletion to start");
        Assert.False(deleting.IsCompleted);

        await Gateway.Kubernetes.Runtime.Finalizers.RemoveAsync(apiKeys, "default", "demo", "tokengate.io/finalizer");

        Assert.Contains("apikey.tokengate.io \"demo\" deleted", await deleting.WaitAsync(TimeSpan.FromSeconds(30)), StringComparison.Ordinal);
        Assert.Null(await GetAsync("apikeys", "ApiKey", "demo"));
    }
}
