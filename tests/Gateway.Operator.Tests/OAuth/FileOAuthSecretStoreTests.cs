using System.Text;
using Gateway.Operator.OAuth;
using Gateway.Operator.Sources;

namespace Gateway.Operator.Tests.OAuth;

/// <summary>File-source write-back: the Secret manifest is rewritten atomically, and only if unchanged since it was read.</summary>
public sealed class FileOAuthSecretStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "tg-oauth-file-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly FileResourceSource _source;

    public FileOAuthSecretStoreTests()
    {
        Directory.CreateDirectory(Path.Combine(_root, "samples"));
        _source = new FileResourceSource(Path.Combine(_root, "samples"), Path.Combine(_root, "state"));
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private const string Account = """
        apiVersion: tokengate.io/v1alpha1
        kind: UpstreamAccount
        metadata: { name: sub, namespace: default }
        spec: { provider: openai, baseUrl: "https://api.example/v1", credentials: { oauth: { secretRef: { name: sub-auth }, tokenUrl: "https://auth.example/token", clientId: c } }, models: [ { name: m } ] }

        """;

    [Fact]
    public async Task Rewrites_only_the_Secret_document_keeps_the_rest_and_refuses_a_stale_version()
    {
        var file = Path.Combine(_source.Folder, "sub.yaml");
        await File.WriteAllTextAsync(file, Account + """
            ---
            # The subscription's tokens; the operator rewrites this document on refresh.
            apiVersion: v1
            kind: Secret
            metadata:
              name: sub-auth
              namespace: default
              labels: { team: ml }
            stringData:
              auth.json: '{"access_token":"at-0","refresh_token":"rt-0","expired":"2030-01-01T00:00:00Z"}'
              note: "kept as it is"
            """);
        var store = new FileOAuthSecretStore(_source);

        var read = (await store.ReadAsync("default", "sub-auth", fresh: true, CancellationToken.None))!;
        Assert.Equal("rt-0", OAuthAuthFile.Find(read.Data)!.RefreshToken);
        var written = await store.WriteAsync("default", "sub-auth", read.Version, "auth.json",
            Encoding.UTF8.GetBytes("""{"access_token":"at-1","refresh_token":"rt-1","it's":"quoted"}"""), CancellationToken.None);
        Assert.Equal(SecretWriteResult.Written, written);

        var text = await File.ReadAllTextAsync(file);
        Assert.StartsWith(Account + "---\n# The subscription's tokens; the operator rewrites this document on refresh.\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.GetFiles(_source.Folder), f => !f.EndsWith(".yaml", StringComparison.Ordinal));
        // The file source reads the result: both documents, the new tokens, the other key and the labels.
        var snapshot = _source.Load();
        Assert.Empty(snapshot.Errors);
        Assert.Single(snapshot.UpstreamAccounts);
        var data = snapshot.Secrets["default/sub-auth"];
        Assert.Equal("""{"access_token":"at-1","refresh_token":"rt-1","it's":"quoted"}""", Encoding.UTF8.GetString(data["auth.json"]));
        Assert.Equal("kept as it is", Encoding.UTF8.GetString(data["note"]));
        Assert.Contains("'team': 'ml'", text, StringComparison.Ordinal);

        // A write based on the first read is refused now: the file changed since.
        Assert.Equal(SecretWriteResult.Conflict, await store.WriteAsync("default", "sub-auth", read.Version, "auth.json", [1], CancellationToken.None));
        Assert.Equal(SecretWriteResult.NotFound, await store.WriteAsync("default", "missing", read.Version, "auth.json", [1], CancellationToken.None));
    }
}
