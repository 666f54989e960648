using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests;

/// <summary>The real kubectl (from Debian) against the fake: discovery, short names, categories, printer columns.</summary>
public sealed class KubectlAgainstFakeTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tg-kubectl-").FullName;
    private FakeApiServer _server = null!;
    private KubernetesClient _client = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeApiServer.StartAsync();
        _server.RegisterCrdsFromDirectory(Path.Combine(RepoPaths.Root, "config", "crd"));
        _client = new KubernetesClient(new KubernetesClientConfiguration { Server = _server.BaseAddress });
        File.WriteAllText(Path.Combine(_dir, "config"), $"""
            apiVersion: v1
            kind: Config
            current-context: fake
            clusters:
            - name: fake
              cluster:
                server: {_server.BaseAddress.ToString().TrimEnd('/')}
            users:
            - name: u
              user:
                token: t
            contexts:
            - name: fake
              context:
                cluster: fake
                user: u
                namespace: default
            """);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private Task<string> Kubectl(params string[] args) =>
        new KubectlRunner(Path.Combine(_dir, "config"), Path.Combine(_dir, "cache")).RunAsync(args);

    [Fact]
    public async Task Kubectl_get_shows_printer_columns_by_short_name_and_category()
    {
        var apiKeys = _client.Resource<JsonObject>(new ResourceDefinition("tokengate.io", "v1alpha1", "apikeys", "ApiKey"));
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
        Assert.Null(_server.GetObject(FakeApiServer.ApiKeys, "default", "demo"));
    }

    [Fact]
    public async Task Kubectl_apply_creates_the_samples_and_reapplies_unchanged()
    {
        var created = await Kubectl("apply", "-f", RepoPaths.Samples);
        Assert.Contains("apikey.tokengate.io/demo created", created, StringComparison.Ordinal);
        Assert.Contains("secret/mock-upstream-credentials created", created, StringComparison.Ordinal);
        Assert.NotNull(_server.GetObject(FakeApiServer.UserQuotas, "default", "demo"));

        var again = await Kubectl("apply", "-f", RepoPaths.Samples);
        Assert.Contains("apikey.tokengate.io/demo unchanged", again, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_explain_reads_the_crd_descriptions()
    {
        var spec = await Kubectl("explain", "apikey.spec");
        Assert.Contains("Desired state of the ApiKey.", spec, StringComparison.Ordinal);
        Assert.Matches(@"owner\s+<string> -required-", spec);
        Assert.Contains("Name of the owning UserQuota in the same namespace.", spec, StringComparison.Ordinal);

        var field = await Kubectl("explain", "ak.spec.rotation.gracePeriod");
        Assert.Contains("How long the previous key version stays valid", field, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_apply_of_an_invalid_spec_is_rejected_with_the_field()
    {
        var file = Path.Combine(_dir, "bad.yaml");
        await File.WriteAllTextAsync(file, """
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: {name: bad, namespace: default}
            spec: {owner: demo, discountRate: 3}
            """);
        var (exitCode, _, stderr) = await new KubectlRunner(Path.Combine(_dir, "config"), Path.Combine(_dir, "cache")).TryRunAsync("apply", "-f", file);

        Assert.NotEqual(0, exitCode);
        Assert.Contains("spec.discountRate", stderr, StringComparison.Ordinal);
        Assert.Contains("less than or equal to 1", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kubectl_delete_waits_for_the_finalizer_and_completes_when_it_is_removed()
    {
        var apiKeys = _client.Resource<JsonObject>(new ResourceDefinition("tokengate.io", "v1alpha1", "apikeys", "ApiKey"));
        var obj = FakeCrdSchema.ParseYaml(File.ReadAllText(Path.Combine(RepoPaths.Samples, "apikey-demo.yaml")))[0];
        obj["metadata"]!["finalizers"] = new JsonArray("tokengate.io/finalizer");
        await apiKeys.CreateAsync(obj);

        var deleting = Kubectl("delete", "ak", "demo", "--timeout=30s");
        await Eventually.TrueAsync(() => Task.FromResult(_server.GetObject(FakeApiServer.ApiKeys, "default", "demo")?["metadata"]?["deletionTimestamp"] is not null), "deletion to start");
        Assert.False(deleting.IsCompleted);

        await Gateway.Kubernetes.Runtime.Finalizers.RemoveAsync(apiKeys, "default", "demo", "tokengate.io/finalizer");

        Assert.Contains("apikey.tokengate.io \"demo\" deleted", await deleting.WaitAsync(TimeSpan.FromSeconds(30)), StringComparison.Ordinal);
        Assert.Null(_server.GetObject(FakeApiServer.ApiKeys, "default", "demo"));
    }
}
