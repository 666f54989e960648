using System.Text;
using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Operator.OAuth;
using Gateway.Operator.Tests.Kubernetes;

namespace Gateway.Operator.Tests.OAuth;

/// <summary>The Kubernetes write-back carries the read's resourceVersion: any change in between makes it a conflict.</summary>
public sealed class KubernetesOAuthSecretStoreTests : IAsyncLifetime
{
    private KubernetesHarness _h = null!;

    public async Task InitializeAsync() => _h = await KubernetesHarness.StartAsync(await KubernetesHarness.FakeClusterAsync());

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Writes_with_the_read_version_and_refuses_after_any_change_in_between()
    {
        await _h.ApplyAsync(KubernetesHarness.Yaml("""
            apiVersion: v1
            kind: Secret
            metadata: { name: sub-auth, namespace: default }
            stringData:
              auth.json: '{"access_token":"at-0","refresh_token":"rt-0"}'
              other: keep
            """));
        var store = new KubernetesOAuthSecretStore(_h.Secrets, new Informer<Secret>(_h.Secrets));

        var read = (await store.ReadAsync("default", "sub-auth", fresh: true, CancellationToken.None))!;
        Assert.Equal("rt-0", OAuthAuthFile.Find(read.Data)!.RefreshToken);
        // Someone edits the Secret (a label) after the read: the write based on the read is refused.
        await _h.Secrets.PatchAsync("default", "sub-auth", new JsonObject { ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["team"] = "ml" } } });
        Assert.Equal(SecretWriteResult.Conflict, await store.WriteAsync("default", "sub-auth", read.Version, "auth.json", "x"u8.ToArray(), CancellationToken.None));

        var again = (await store.ReadAsync("default", "sub-auth", fresh: true, CancellationToken.None))!;
        Assert.Equal(SecretWriteResult.Written, await store.WriteAsync("default", "sub-auth", again.Version, "auth.json",
            """{"access_token":"at-1","refresh_token":"rt-1"}"""u8.ToArray(), CancellationToken.None));
        var stored = await _h.Secrets.GetAsync("default", "sub-auth");
        Assert.Equal("""{"access_token":"at-1","refresh_token":"rt-1"}""", Encoding.UTF8.GetString(stored.Data!["auth.json"]));
        Assert.Equal("keep", Encoding.UTF8.GetString(stored.Data!["other"]));
        Assert.Equal("ml", stored.Metadata.Labels!["team"]);
        Assert.Equal(SecretWriteResult.NotFound, await store.WriteAsync("default", "gone", again.Version, "auth.json", [1], CancellationToken.None));
    }
}
