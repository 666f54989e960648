using System.Text;
using Gateway.Core.Keys;
using Gateway.Core.Resources;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;
using Gateway.Operator.Kubernetes;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// The acceptance walk-through as a platform engineer types it, with the real kubectl against the fake API
/// server (which serves the committed CRDs, as after <c>kubectl apply -f charts/tokengate/crds/</c>) and a
/// real operator host run with <c>--source kubernetes --kubeconfig</c>.
/// </summary>
public abstract class KubectlAcceptanceTests : IAsyncLifetime
{
    public sealed class Fake : KubectlAcceptanceTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => KubernetesHarness.FakeClusterAsync();
    }

    [RealApiServer, Collection(RealApiServerCollection.Name)]
    public sealed class Real(RealApiServerFixture fixture) : KubectlAcceptanceTests
    {
        protected override Task<IKubeTestCluster> StartClusterAsync() => fixture.AcquireAsync();
    }

    protected abstract Task<IKubeTestCluster> StartClusterAsync();

    private readonly string _kubectlCache = Path.Combine(Path.GetTempPath(), "tg-kubectl-" + Guid.NewGuid().ToString("N")[..8]);
    private KubernetesHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await StartClusterAsync());

    public async Task DisposeAsync()
    {
        await _h.DisposeAsync();
        try { Directory.Delete(_kubectlCache, recursive: true); } catch (IOException) { }
    }

    private Task<string> Kubectl(params string[] args) =>
        new KubectlRunner(_h.KubeconfigPath, _kubectlCache).RunAsync(args);

    [KubeFact]
    public async Task Apply_samples_get_ready_read_the_secret_rotate_and_delete_with_kubectl()
    {
        await _h.StartOperatorAsync();

        await Kubectl("apply", "-f", RepoPaths.Samples);
        await _h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        await _h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
        await _h.ReadyAsync(TokenGateResources.UpstreamAccounts, "mock");

        var table = await Kubectl("get", "ak,uq,ua");
        Assert.Matches(@"apikey\.tokengate\.io/demo\s+demo\s+tg-\S+\s+True", table);
        Assert.Matches(@"userquota\.tokengate\.io/demo\s+demo@example\.com\s+10\s+0\s+50\s+True", table);
        // The API server prints the first match of a printer column's JSONPath: the first model.
        Assert.Matches(@"upstreamaccount\.tokengate\.io/mock\s+openai-compatible\s+gpt-4o-mini\s+0\s+Unknown\s+True", table);
        Assert.Equal("1/1", await Kubectl("get", "ak", "demo", "-o", "jsonpath={.status.observedGeneration}/{.metadata.generation}"));

        var key = Encoding.UTF8.GetString(Convert.FromBase64String(await Kubectl("get", "secret", "demo-apikey", "-o", "jsonpath={.data.OPENAI_API_KEY}")));
        Assert.True(ApiKeyFormat.IsWellFormed(key));
        Assert.True(await _h.RedisHasKeyAsync(key));

        await Kubectl("annotate", "ak", "demo", TokenGateApi.RotateAnnotation + "=now");
        var rotated = await _h.IssuedKeyAsync(not: key);
        await Eventually.TrueAsync(() => _h.RedisHasKeyAsync(rotated), "the rotated key in Redis");

        // kubectl delete waits until the object is gone: it returns only if the finalizer completed.
        await Kubectl("delete", "ak", "demo", "--timeout=30s");
        Assert.Null(await _h.GetAsync(TokenGateResources.ApiKeys, "demo"));
        Assert.False(await _h.RedisHasKeyAsync(key));
        Assert.False(await _h.RedisHasKeyAsync(rotated));
        await using var db = _h.Db();
        Assert.All(await db.ApiKeyVersions.ToListAsync(), v => Assert.NotNull(v.RevokedAt));
    }
}
