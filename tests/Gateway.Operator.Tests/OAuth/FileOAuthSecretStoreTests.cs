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
    public async Task A_Secret_converted_from_an_auth_file_in_accounts_is_written_back_to_that_file()
    {
        var accounts = Path.Combine(_source.Folder, FileResourceSource.AccountsFolder);
        Directory.CreateDirectory(accounts);
        var file = Path.Combine(accounts, "alice.json");
        await File.WriteAllTextAsync(file, """
            {"type":"codex","email":"alice@example.com","account_id":"acct-alice","access_token":"FAKE-at-0","refresh_token":"FAKE-rt-0","expired":"2099-12-31T00:00:00Z"}
            """);
        var snapshot = _source.Load();
        Assert.Empty(snapshot.Errors);
        var ua = Assert.Single(snapshot.UpstreamAccounts);
        var secretName = ua.Spec.Credentials.Oauth!.SecretRef.Name;
        var store = new FileOAuthSecretStore(_source);

        var read = (await store.ReadAsync("default", secretName, fresh: true, CancellationToken.None))!;
        var auth = OAuthAuthFile.Find(read.Data)!;
        Assert.Equal("FAKE-rt-0", auth.RefreshToken);
        var expiry = new DateTimeOffset(2100, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var refreshed = auth.WithTokens("FAKE-at-1", "FAKE-rt-1", null, expiry, DateTimeOffset.UtcNow);
        Assert.Equal(SecretWriteResult.Written, await store.WriteAsync("default", secretName, read.Version, auth.SecretKey, refreshed, CancellationToken.None));

        // The file holds the new pair and still converts to the same account; a stale version is refused.
        snapshot = _source.Load();
        Assert.Empty(snapshot.Errors);
        Assert.Equal(ua.Key, Assert.Single(snapshot.UpstreamAccounts).Key);
        var after = OAuthAuthFile.Find(snapshot.Secrets["default/" + secretName])!;
        Assert.Equal("FAKE-rt-1", after.RefreshToken);
        Assert.Equal("FAKE-at-1", after.AccessToken);
        Assert.Equal(expiry, after.ExpiresAt);
        Assert.Contains("alice@example.com", await File.ReadAllTextAsync(file), StringComparison.Ordinal);
        Assert.Equal(SecretWriteResult.Conflict, await store.WriteAsync("default", secretName, read.Version, auth.SecretKey, refreshed, CancellationToken.None));
        Assert.Single(Directory.GetFiles(accounts));
    }

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
