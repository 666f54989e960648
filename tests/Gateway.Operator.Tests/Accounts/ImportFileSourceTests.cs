using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Runtime;
using Gateway.Operator.Accounts;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Accounts;

/// <summary>
/// Acceptance: sample auth files → import-accounts → the file source (what `make run` runs) loads the manifests and
/// the operator reconciles each UpstreamAccount Ready with its credential resolved; raw auth files dropped into the
/// source folder's accounts/ go through the same conversion. Real PostgreSQL and Redis.
/// </summary>
public sealed class ImportFileSourceTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;

    public async Task InitializeAsync() => _f = await OperatorFixture.CreateAsync();

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task AssertAccountsReconciledAsync()
    {
        foreach (var (name, expires) in AccountSamples.Expected)
        {
            var status = _f.Source.ReadStatus<UpstreamAccountStatus>("UpstreamAccount", "default", name);
            Assert.NotNull(status);
            Assert.True(Conditions.IsTrue(status.Conditions, "Ready"), $"{name} should be Ready: {status.LastError}");
            var credentials = Conditions.Find(status.Conditions, "CredentialsValid");
            Assert.Equal(("True", "CredentialsResolved"), (credentials?.Status, credentials?.Reason));
            // The expiry comes from the auth JSON in the Secret: for alice, the newer of the duplicate pair.
            Assert.Equal(expires, status.TokenExpiresAt);
        }

        var upstreams = JsonSerializer.Deserialize<List<UpstreamProjection>>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Upstreams])).AsString()!, TokenGateJson.Options)!;
        Assert.Equal(AccountSamples.Expected.Keys.Select(n => "default/" + n).Order(StringComparer.Ordinal), upstreams.Select(u => u.Name).Order(StringComparer.Ordinal));
        Assert.All(upstreams, u => Assert.False(string.IsNullOrEmpty(u.Credential)));
        await using var db = _f.Db();
        Assert.Equal(3, await db.UpstreamAccounts.CountAsync(u => u.DeletedAt == null));
    }

    [Fact]
    public async Task Imported_manifests_load_in_the_file_source_and_reconcile_Ready_with_the_credential_resolved()
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var exit = ImportAccountsCommand.Run(["import-accounts", AccountSamples.Folder, "--out", Path.Combine(_f.Folder, "imported")], stdout, stderr, stdoutIsTerminal: false);
        Assert.Equal(0, exit);

        var snapshot = _f.Source.Load();
        Assert.Empty(snapshot.Errors);
        Assert.Equal(3, snapshot.UpstreamAccounts.Count);
        Assert.All(snapshot.UpstreamAccounts, ua => Assert.NotNull(ua.Spec.Credentials.Oauth));
        var secret = snapshot.Secrets["default/codex-alice-example-com-auth"];
        using (var auth = JsonDocument.Parse(secret[ImportedAccount.SecretKey]))
        {
            Assert.Equal(AccountSamples.AliceNewAccessToken, auth.RootElement.GetProperty("access_token").GetString());
        }

        await _f.Driver.PassAsync(CancellationToken.None);
        await AssertAccountsReconciledAsync();
    }

    [Fact]
    public async Task Raw_auth_files_in_the_accounts_folder_become_the_same_objects_and_a_bad_one_is_reported_without_its_content()
    {
        var accounts = AccountSamples.CopyTo(Path.Combine(_f.Folder, "accounts"));
        File.WriteAllText(Path.Combine(accounts, "broken.json"), """{"type":"codex","email":"z@example.com","access_token":"FAKE-broken-access-7777""");

        var snapshot = _f.Source.Load();
        var error = Assert.Single(snapshot.Errors);
        Assert.StartsWith("accounts/broken.json: is not valid JSON", error, StringComparison.Ordinal);
        Assert.DoesNotContain("FAKE-broken", error, StringComparison.Ordinal);
        Assert.Contains(snapshot.Notices!, n => n.Contains("accounts/cliproxyapi-codex-alice-old-copy.json into accounts/cliproxyapi-codex-alice.json", StringComparison.Ordinal));
        Assert.Equal(Path.Combine(accounts, "cliproxyapi-codex-alice.json"), _f.Source.AuthFilePath("default", "codex-alice-example-com-auth"));

        // Same objects as the command makes from the same files.
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        Assert.Equal(0, ImportAccountsCommand.Run(["import-accounts", AccountSamples.Folder], stdout, stderr, stdoutIsTerminal: false));
        var fromCommand = Gateway.Operator.Sources.YamlDocuments.Parse(stdout.ToString(), "stdout")
            .Where(d => d["kind"]!.GetValue<string>() == "UpstreamAccount")
            .ToDictionary(d => d["metadata"]!["name"]!.GetValue<string>(), d => d["spec"]!.ToJsonString(), StringComparer.Ordinal);
        Assert.Equal(fromCommand.Keys.Order(StringComparer.Ordinal), snapshot.UpstreamAccounts.Select(u => u.Metadata.Name).Order(StringComparer.Ordinal));
        foreach (var ua in snapshot.UpstreamAccounts)
        {
            Assert.Equal(fromCommand[ua.Metadata.Name], JsonSerializer.Serialize(ua.Spec, TokenGateJson.Options));
        }

        await _f.Driver.PassAsync(CancellationToken.None);
        await AssertAccountsReconciledAsync();

        // Removing an auth file removes its account on the next pass, like deleting a manifest.
        File.Delete(Path.Combine(accounts, "cliproxyapi-claude-carol.json"));
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        Assert.NotNull((await db.UpstreamAccounts.SingleAsync(u => u.Name == "claude-carol-example-com")).DeletedAt);
    }

    [Fact]
    public void A_manifest_declaring_the_same_account_wins_over_the_auth_file()
    {
        AccountSamples.CopyTo(Path.Combine(_f.Folder, "accounts"));
        _f.WriteManifest("carol.yaml", """
            apiVersion: v1
            kind: Secret
            metadata:
              name: claude-carol-example-com-auth
            stringData:
              auth.json: '{"type":"claude","email":"carol@example.com","access_token":"FAKE-from-manifest","refresh_token":"FAKE-r"}'
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata:
              name: claude-carol-example-com
            spec:
              provider: anthropic
              baseUrl: http://127.0.0.1:8089/v1
              credentials:
                oauth:
                  secretRef: {name: claude-carol-example-com-auth}
                  tokenUrl: http://127.0.0.1:8089/oauth/token
                  clientId: test
              models: [{name: claude-sonnet-4-5}]
            """);

        var snapshot = _f.Source.Load();
        Assert.Empty(snapshot.Errors);
        var carol = Assert.Single(snapshot.UpstreamAccounts, u => u.Metadata.Name == "claude-carol-example-com");
        Assert.Equal("http://127.0.0.1:8089/v1", carol.Spec.BaseUrl);
        Assert.Equal("FAKE-from-manifest", JsonDocument.Parse(snapshot.Secrets["default/claude-carol-example-com-auth"]["auth.json"]).RootElement.GetProperty("access_token").GetString());
        Assert.Contains(snapshot.Notices!, n => n.Contains("accounts/cliproxyapi-claude-carol.json: UpstreamAccount default/claude-carol-example-com", StringComparison.Ordinal) && n.Contains("the manifest wins", StringComparison.Ordinal));
        Assert.Equal(3, snapshot.UpstreamAccounts.Count);
        Assert.Null(_f.Source.AuthFilePath("default", "claude-carol-example-com-auth"));
    }
}
