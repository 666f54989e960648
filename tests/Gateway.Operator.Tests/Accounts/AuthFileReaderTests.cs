using System.Text;
using System.Text.Json;
using Gateway.Operator.Accounts;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.Tests.Accounts;

public sealed class AuthFileReaderTests
{
    private static (ImportedAccount? Account, AuthFileError? Error) Read(string json, string? defaultType = null) =>
        AuthFileReader.Read(Encoding.UTF8.GetBytes(json), "dir/file.json", defaultType);

    private static ImportedAccount Sample(string file)
    {
        var (account, error) = AuthFileReader.ReadFile(Path.Combine(AccountSamples.Folder, file), file);
        Assert.Null(error);
        return account!;
    }

    [Fact]
    public void Reads_a_flat_CLIProxyAPI_file_and_normalizes_its_expiry_to_UTC()
    {
        var a = Sample("cliproxyapi-codex-alice.json");
        Assert.Equal(("codex", "alice@example.com", "acct-fake-alice-0001"), (a.Type, a.Email, a.AccountId));
        Assert.Equal(AccountSamples.AliceNewAccessToken, a.AccessToken);
        Assert.Equal("FAKE-codex-refresh-alice-NEW-0001", a.RefreshToken);
        Assert.Equal(new DateTimeOffset(2099, 12, 31, 0, 0, 0, TimeSpan.Zero), a.Expired);
        Assert.Equal(new DateTimeOffset(2099, 12, 21, 0, 0, 0, TimeSpan.Zero), a.LastRefresh);
    }

    [Fact]
    public void Reads_a_Codex_CLI_auth_json_taking_type_email_and_expiry_from_the_tokens()
    {
        var b = Sample("codex-cli-bob-auth.json");
        Assert.Equal(("codex", "bob@example.com", "acct-fake-bob-0003"), (b.Type, b.Email, b.AccountId));
        Assert.Equal("FAKE-codex-refresh-bob-0003", b.RefreshToken);
        Assert.StartsWith("eyJ", b.AccessToken, StringComparison.Ordinal);
        Assert.NotNull(b.IdToken);
        Assert.Equal(new DateTimeOffset(2100, 1, 1, 0, 0, 0, TimeSpan.Zero), b.Expired);
        Assert.Equal(new DateTimeOffset(2099, 12, 20, 10, 0, 0, TimeSpan.Zero), b.LastRefresh);
    }

    [Fact]
    public void The_normalized_auth_json_is_flat_and_what_the_operator_reads()
    {
        var b = Sample("codex-cli-bob-auth.json");
        using var doc = JsonDocument.Parse(b.ToAuthJson());
        var root = doc.RootElement;
        Assert.Equal(b.AccessToken, root.GetProperty("access_token").GetString());
        Assert.Equal(b.RefreshToken, root.GetProperty("refresh_token").GetString());
        Assert.Equal("codex", root.GetProperty("type").GetString());
        Assert.Equal("acct-fake-bob-0003", root.GetProperty("account_id").GetString());
        Assert.False(root.TryGetProperty("tokens", out _));
        Assert.Equal(b.Expired, OAuthExpiry.Read(root));

        // An empty id_token is left out rather than written empty.
        Assert.False(JsonDocument.Parse(Sample("cliproxyapi-claude-carol.json").ToAuthJson()).RootElement.TryGetProperty("id_token", out _));
    }

    [Fact]
    public void ToString_never_shows_a_token()
    {
        var a = Sample("cliproxyapi-codex-alice.json");
        var text = a + " " + new AccountMerge(a, [a]);
        Assert.DoesNotContain("FAKE-codex", text, StringComparison.Ordinal);
        Assert.Contains("alice@example.com", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":"FAKE-secret-access","refresh_token":"FAKE-secret-refresh",""", "is not valid JSON")]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":"FAKE-secret-access" "refresh_token":"FAKE-secret-refresh"}""", "is not valid JSON")]
    [InlineData("""["FAKE-secret-access"]""", "is not a JSON object")]
    [InlineData("""{"type":"codex","email":"x@example.com","refresh_token":"FAKE-secret-refresh"}""", "has no 'access_token'")]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":"FAKE-secret-access"}""", "has no 'refresh_token'")]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":"FAKE-secret-access","refresh_token":""}""", "has no 'refresh_token'")]
    [InlineData("""{"type":"claude","access_token":"FAKE-secret-access","refresh_token":"FAKE-secret-refresh"}""", "names no account")]
    [InlineData("""{"email":"x@example.com","access_token":"FAKE-secret-access","refresh_token":"FAKE-secret-refresh"}""", "has no 'type'")]
    [InlineData("""{"type":"Codex Pro!","email":"x@example.com","access_token":"FAKE-secret-access","refresh_token":"FAKE-secret-refresh"}""", "field 'type'")]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":{"v":"FAKE-secret-access"},"refresh_token":"FAKE-secret-refresh"}""", "field 'access_token' must be a string")]
    [InlineData("""{"type":"codex","email":"x@example.com","access_token":"FAKE-secret-access","refresh_token":"FAKE-secret-refresh","expired":"soon FAKE-secret"}""", "field 'expired' is not a timestamp")]
    [InlineData("""{"OPENAI_API_KEY":"sk-FAKE-secret-key","tokens":null}""", "holds an OpenAI API key")]
    public void An_unusable_file_is_named_with_the_problem_and_never_its_token_content(string json, string expected)
    {
        var (account, error) = Read(json);
        Assert.Null(account);
        Assert.NotNull(error);
        var text = error.ToString();
        Assert.StartsWith("dir/file.json: ", text, StringComparison.Ordinal);
        Assert.Contains(expected, text, StringComparison.Ordinal);
        Assert.DoesNotContain("FAKE-secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-", text, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_without_a_type_takes_the_default_type_when_one_is_given()
    {
        var (account, error) = Read("""{"email":"x@example.com","access_token":"FAKE-a","refresh_token":"FAKE-r"}""", defaultType: "Claude");
        Assert.Null(error);
        Assert.Equal("claude", account!.Type);
    }

    [Fact]
    public void Unix_second_and_millisecond_expiries_are_read()
    {
        var (s, _) = Read("""{"type":"claude","email":"x@example.com","access_token":"FAKE-a","refresh_token":"FAKE-r","expires_at":4102444800}""");
        var (ms, _) = Read("""{"type":"claude","email":"x@example.com","access_token":"FAKE-a","refresh_token":"FAKE-r","expired":4102444800000}""");
        Assert.Equal(new DateTimeOffset(2100, 1, 1, 0, 0, 0, TimeSpan.Zero), s!.Expired);
        Assert.Equal(s.Expired, ms!.Expired);
    }

    [Fact]
    public void A_missing_or_oversized_file_is_an_error_naming_it()
    {
        var dir = Directory.CreateTempSubdirectory("tg-import-").FullName;
        try
        {
            Assert.Contains("file not found", AuthFileReader.ReadFile(Path.Combine(dir, "nope.json"), "nope.json").Error!.Message, StringComparison.Ordinal);
            var big = Path.Combine(dir, "big.json");
            File.WriteAllText(big, "{\"x\":\"" + new string('a', (int)AuthFileReader.MaxFileBytes) + "\"}");
            Assert.Contains("larger than", AuthFileReader.ReadFile(big, "big.json").Error!.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
