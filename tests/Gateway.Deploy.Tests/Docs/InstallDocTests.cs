using System.Text.RegularExpressions;
using Gateway.Deploy.Tests.Chart;
using Gateway.Deploy.Tests.Publish;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using static Gateway.Deploy.Tests.Manifests;

namespace Gateway.Deploy.Tests.Docs;

/// <summary>docs/install.md's copy-paste path uses files and values that really work.</summary>
public sealed partial class InstallDocTests
{
    private static string Doc => File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "install.md"));

    [Fact]
    public async Task The_first_tenant_example_is_accepted_by_the_CRD_schemas_and_becomes_a_key()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tg-doc-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        try
        {
            await using var cluster = await FakeCluster.StartAsync(dir);
            var kubectl = new KubectlRunner(cluster.KubeconfigPath, Path.Combine(dir, "cache"));
            var output = await kubectl.RunAsync("-n", "team-a", "apply", "-f", Path.Combine(RepoPaths.Root, "docs", "examples", "first-tenant.yaml"));
            Assert.Contains("upstreamaccount.tokengate.io/openai created", output, StringComparison.Ordinal);
            Assert.Contains("userquota.tokengate.io/alice created", output, StringComparison.Ordinal);
            Assert.Contains("apikey.tokengate.io/alice-laptop created", output, StringComparison.Ordinal);
            // The Secret the quick start reads is the one the operator issues for this ApiKey.
            Assert.Contains("secret alice-laptop-apikey", Doc, StringComparison.Ordinal);
            Assert.Equal("alice", cluster.Server.GetObject(FakeApiServer.ApiKeys, "team-a", "alice-laptop")!["spec"]!["owner"]!.GetValue<string>());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task The_quick_starts_helm_install_and_Secrets_match_the_charts_defaults()
    {
        var m = await Helm.TemplateAsync(set: ["image.registry=registry.example.com/tokengate"]);
        var env = Env(Container(m.Get("Deployment", "tokengate-operator")));
        foreach (var name in new[] { "ConnectionStrings__Postgres", "ConnectionStrings__Redis" })
        {
            var secret = env[name]["valueFrom"]!["secretKeyRef"]!;
            // kubectl create secret generic NAME [\ newline] --from-literal=KEY=...
            Assert.Matches($@"create secret generic {secret["name"]}\s+(\\\s+)?--from-literal={secret["key"]}=", Doc);
        }
        Assert.Equal("registry.example.com/tokengate/proxy:0.1.0", Container(m.Get("Deployment", "tokengate-proxy"))["image"]!.GetValue<string>());

        // Every value the doc sets exists in the schema (unknown keys are refused).
        var sets = HelmSet().Matches(Doc).Select(x => x.Groups[1].Value).Distinct().ToList();
        Assert.NotEmpty(sets);
        foreach (var s in sets) await Helm.TemplateAsync(set: [s.Replace("$REGISTRY", "registry.example.com/tokengate", StringComparison.Ordinal)]);
    }

    [Fact]
    public void The_trial_datastores_match_the_connection_strings_of_the_quick_start()
    {
        var docs = Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "examples", "dev-datastores.yaml")));
        Assert.Equal(["postgres", "redis"], docs.OfKind("Service").Select(Name).Order(StringComparer.Ordinal));
        var pg = Env(Container(docs.Get("Deployment", "postgres")));
        Assert.Contains($"Host=postgres;Port=5432;Username={pg["POSTGRES_USER"]["value"]};Password={pg["POSTGRES_PASSWORD"]["value"]};Database={pg["POSTGRES_DB"]["value"]}", Doc, StringComparison.Ordinal);
        var redisArgs = Strings(Container(docs.Get("Deployment", "redis"))["args"]).ToList();
        Assert.Contains($"redis:6379,password={redisArgs[redisArgs.IndexOf("--requirepass") + 1]}", Doc, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"--set ([A-Za-z.]+=\S+)")]
    private static partial Regex HelmSet();
}
