using Gateway.Kubernetes.Client;

namespace Gateway.Testing.Kubernetes;

/// <summary>A fresh fake API server serving the committed CRDs (schemas enforced); anyone may do anything.</summary>
public sealed class FakeKubeCluster : IKubeTestCluster
{
    private readonly string _dir;

    private FakeKubeCluster(FakeApiServer server, string dir)
    {
        Fake = server;
        _dir = dir;
        Admin = new KubernetesClient(new KubernetesClientConfiguration { Server = server.BaseAddress, RequestTimeout = TimeSpan.FromSeconds(10) });
        AdminKubeconfigPath = WriteKubeconfig(Path.Combine(dir, "kubeconfig"), server, "default");
        OperatorKubeconfigPath = WriteKubeconfig(Path.Combine(dir, "operator.kubeconfig"), server, OperatorNamespace);
    }

    private static string WriteKubeconfig(string path, FakeApiServer server, string ns)
    {
        File.WriteAllText(path, $"""
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
                namespace: {ns}
            current-context: fake
            """);
        return path;
    }

    public string Name => "fake";
    public KubernetesClient Admin { get; }
    public string AdminKubeconfigPath { get; }
    public string OperatorKubeconfigPath { get; }
    public string OperatorNamespace => RealKubeClusterNames.OperatorNamespace;
    public FakeApiServer Fake { get; }

    public static async Task<FakeKubeCluster> StartAsync(string crdDirectory)
    {
        var server = await FakeApiServer.StartAsync(s =>
        {
            s.BookmarkInterval = TimeSpan.FromMilliseconds(200);
            s.RegisterCrdsFromDirectory(crdDirectory);
        });
        var dir = Path.Combine(Path.GetTempPath(), "tg-k8s-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return new FakeKubeCluster(server, dir);
    }

    public Task EnsureNamespaceAsync(string ns) => Task.CompletedTask;

    public Task GrantLeaderElectionInAsync(string ns) => Task.CompletedTask;

    public Task CompactAsync()
    {
        Fake.CompactHistory();
        return Task.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        Admin.Dispose();
        await Fake.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>Names of the operator's install, as in config/rbac and the chart.</summary>
public static class RealKubeClusterNames
{
    public const string OperatorNamespace = "tokengate-system";
    public const string OperatorServiceAccount = "tokengate-operator";
}
