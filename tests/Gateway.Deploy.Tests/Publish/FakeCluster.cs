using Gateway.Deploy.Tests.Chart;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;

namespace Gateway.Deploy.Tests.Publish;

/// <summary>
/// The loopback fake API server serving the chart's CRDs, with the samples applied by kubectl, and a kubeconfig
/// for it that stands in for the service-account mount a pod would get.
/// </summary>
public sealed class FakeCluster : IAsyncDisposable
{
    private readonly string _dir;

    private FakeCluster(FakeApiServer server, string dir)
    {
        Server = server;
        _dir = dir;
        KubeconfigPath = Path.Combine(dir, "kubeconfig");
    }

    public FakeApiServer Server { get; }
    public string KubeconfigPath { get; }

    public static async Task<FakeCluster> StartAsync(string parent)
    {
        var server = await FakeApiServer.StartAsync(s => s.RegisterCrdsFromDirectory(Path.Combine(Helm.ChartDirectory, "crds")));
        var dir = Path.Combine(parent, "cluster-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead
            | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        var cluster = new FakeCluster(server, dir);
        await File.WriteAllTextAsync(cluster.KubeconfigPath, $$"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {{server.BaseAddress.ToString().TrimEnd('/')}}
            users:
            - name: operator
              user: {}
            contexts:
            - name: fake
              context:
                cluster: fake
                user: operator
                namespace: tokengate-system
            current-context: fake
            """);
        File.SetUnixFileMode(cluster.KubeconfigPath, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        try
        {
            await new KubectlRunner(cluster.KubeconfigPath, Path.Combine(dir, "kubectl-cache")).RunAsync("apply", "-f", RepoPaths.Samples);
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }
}
