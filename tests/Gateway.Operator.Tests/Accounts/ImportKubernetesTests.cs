using System.Globalization;
using System.Text.Json;
using Gateway.Operator.Accounts;
using Gateway.Operator.Kubernetes;
using Gateway.Operator.Tests.Kubernetes;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Accounts;

/// <summary>
/// Acceptance: the manifests import-accounts writes are accepted by the API server — the fake, and a real
/// kube-apiserver (schema, CEL rules) when KUBEBUILDER_ASSETS is set — through the real kubectl, and the operator
/// (<c>--source kubernetes</c>, under its own RBAC on the real server) makes every imported account Ready.
/// </summary>
public abstract class ImportKubernetesTests : IAsyncLifetime
{
    public sealed class Fake : ImportKubernetesTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : ImportKubernetesTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    private readonly string _dir = Directory.CreateTempSubdirectory("tg-import-k8s-").FullName;
    private KubernetesHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await StartClusterAsync());

    public async Task DisposeAsync()
    {
        await _h.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private Task<string> Kubectl(params string[] args) => new KubectlRunner(_h.KubeconfigPath, Path.Combine(_dir, "kubectl-cache")).RunAsync(args);

    private static string Import(params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Assert.Equal(0, ImportAccountsCommand.Run(["import-accounts", AccountSamples.Folder, .. args], stdout, stderr, stdoutIsTerminal: false));
        return stdout.ToString();
    }

    [KubeFact]
    public async Task Imported_manifests_apply_with_kubectl_and_the_operator_makes_every_account_Ready()
    {
        var outDir = Path.Combine(_dir, "out");
        Import("--out", outDir);
        await _h.StartOperatorAsync();

        var applied = await Kubectl("apply", "-f", outDir);
        foreach (var name in AccountSamples.Expected.Keys)
        {
            Assert.Contains($"upstreamaccount.tokengate.io/{name} created", applied, StringComparison.Ordinal);
            Assert.Contains($"secret/{name}-auth created", applied, StringComparison.Ordinal);
        }

        foreach (var (name, expires) in AccountSamples.Expected)
        {
            var ua = await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, name);
            var credentials = KubernetesHarness.Condition(ua, "CredentialsValid");
            Assert.Equal("True", credentials?["status"]?.GetValue<string>());
            Assert.Equal("CredentialsResolved", credentials?["reason"]?.GetValue<string>());
            Assert.Equal(expires, DateTimeOffset.Parse(ua["status"]!["tokenExpiresAt"]!.GetValue<string>(), CultureInfo.InvariantCulture));
        }

        // The Secret the API server stores holds the newest tokens of the duplicate pair.
        var secret = await _h.Secrets.GetAsync("default", "codex-alice-example-com-auth");
        using (var auth = JsonDocument.Parse(secret.Data![ImportedAccount.SecretKey]))
        {
            Assert.Equal(AccountSamples.AliceNewAccessToken, auth.RootElement.GetProperty("access_token").GetString());
        }

        // The stdout stream describes the same objects: applying it (kubectl apply -f -) changes nothing.
        var stream = Path.Combine(_dir, "stream.yaml");
        await File.WriteAllTextAsync(stream, Import());
        var again = await Kubectl("apply", "-f", stream);
        Assert.Equal(6, again.Split('\n').Count(l => l.EndsWith(" unchanged", StringComparison.Ordinal)));
    }
}
