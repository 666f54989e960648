using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Operator.Accounts;
using Gateway.Operator.Sources;

namespace Gateway.Operator.Tests.Accounts;

/// <summary>The command as a user runs it: arguments in, stdout/stderr text and an exit code out.</summary>
public sealed class ImportAccountsCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tg-import-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private sealed record Run(int Exit, string Stdout, string Stderr);

    private static Run Invoke(bool terminal, params string[] args)
    {
        var (stdout, stderr) = (new StringWriter(), new StringWriter());
        var exit = ImportAccountsCommand.Run(["import-accounts", .. args], stdout, stderr, terminal);
        return new Run(exit, stdout.ToString(), stderr.ToString());
    }

    private static JsonObject Doc(string yaml, string kind, string name) =>
        YamlDocuments.Parse(yaml, "out").Single(d => d["kind"]!.GetValue<string>() == kind && d["metadata"]!["name"]!.GetValue<string>() == name);

    [Fact]
    public void On_a_terminal_it_refuses_to_print_tokens_and_prints_none()
    {
        var r = Invoke(terminal: true, AccountSamples.Folder);
        Assert.Equal(2, r.Exit);
        Assert.Equal("", r.Stdout);
        Assert.Contains("refusing to print OAuth tokens to the terminal", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--out", r.Stderr, StringComparison.Ordinal);
        AccountSamples.AssertNoToken(r.Stdout + r.Stderr, "the terminal output");
    }

    [Fact]
    public void On_a_terminal_with_show_tokens_and_when_piped_it_prints_the_manifests_with_the_tokens()
    {
        foreach (var r in new[] { Invoke(terminal: true, AccountSamples.Folder, "--show-tokens"), Invoke(terminal: false, AccountSamples.Folder) })
        {
            Assert.Equal(0, r.Exit);
            var revealed = AccountSamples.Revealed(r.Stdout);
            Assert.Contains(AccountSamples.AliceNewAccessToken, revealed, StringComparison.Ordinal);
            Assert.Contains("FAKE-claude-refresh-carol-0002", revealed, StringComparison.Ordinal);
            AccountSamples.AssertNoToken(r.Stderr, "stderr");
        }
    }

    [Fact]
    public void With_out_on_a_terminal_it_writes_one_private_file_per_account_and_prints_no_token()
    {
        var outDir = Path.Combine(_dir, "out");
        var r = Invoke(terminal: true, AccountSamples.Folder, "--out", outDir, "--namespace", "llm");
        Assert.Equal(0, r.Exit);
        AccountSamples.AssertNoToken(r.Stdout + r.Stderr, "the terminal output");
        var files = Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(AccountSamples.Expected.Keys.Select(n => n + ".yaml").Order(StringComparer.Ordinal), files);
        foreach (var name in AccountSamples.Expected.Keys)
        {
            var path = Path.Combine(outDir, name + ".yaml");
            Assert.Contains($"wrote {Path.Join(outDir, name + ".yaml")}", r.Stdout, StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows()) Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
            var yaml = File.ReadAllText(path);
            var ua = Doc(yaml, "UpstreamAccount", name);
            Assert.Equal("llm", ua["metadata"]!["namespace"]!.GetValue<string>());
            Assert.Equal(name + "-auth", ua["spec"]!["credentials"]!["oauth"]!["secretRef"]!["name"]!.GetValue<string>());
            Assert.Equal("llm", Doc(yaml, "Secret", name + "-auth")["metadata"]!["namespace"]!.GetValue<string>());
        }
    }

    [Fact]
    public void The_duplicate_pair_becomes_one_account_with_the_newest_tokens_and_the_merge_is_reported()
    {
        var r = Invoke(terminal: false, AccountSamples.Folder);
        Assert.Equal(0, r.Exit);
        var docs = YamlDocuments.Parse(r.Stdout, "out");
        Assert.Equal(AccountSamples.Expected.Keys.Order(StringComparer.Ordinal),
            docs.Where(d => d["kind"]!.GetValue<string>() == "UpstreamAccount").Select(d => d["metadata"]!["name"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.Equal(3, docs.Count(d => d["kind"]!.GetValue<string>() == "Secret"));

        var secret = Doc(r.Stdout, "Secret", "codex-alice-example-com-auth");
        using var auth = JsonDocument.Parse(Convert.FromBase64String(secret["data"]![ImportedAccount.SecretKey]!.GetValue<string>()));
        Assert.Equal(AccountSamples.AliceNewAccessToken, auth.RootElement.GetProperty("access_token").GetString());
        Assert.Equal("2099-12-31T00:00:00Z", auth.RootElement.GetProperty("expired").GetString());
        Assert.DoesNotContain(AccountSamples.AliceOldAccessToken, AccountSamples.Revealed(r.Stdout), StringComparison.Ordinal);

        Assert.Contains("cliproxyapi-codex-alice-old-copy.json into", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("same codex account alice@example.com", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("3 account(s) from 4 file(s), 1 duplicate file(s) merged", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Type_defaults_fill_the_spec_and_flags_override_them()
    {
        var defaults = Invoke(terminal: false, AccountSamples.Folder);
        var codex = Doc(defaults.Stdout, "UpstreamAccount", "codex-bob-example-com")["spec"]!;
        Assert.Equal(("openai", "https://chatgpt.com/backend-api/codex"), (codex["provider"]!.GetValue<string>(), codex["baseUrl"]!.GetValue<string>()));
        Assert.Equal("https://auth.openai.com/oauth/token", codex["credentials"]!["oauth"]!["tokenUrl"]!.GetValue<string>());
        // The ChatGPT backend reads the account id from a header, which the importer writes into spec.headers.
        Assert.Equal("acct-fake-bob-0003", codex["headers"]!["ChatGPT-Account-Id"]!.GetValue<string>());
        var claude = Doc(defaults.Stdout, "UpstreamAccount", "claude-carol-example-com")["spec"]!;
        Assert.Equal("anthropic", claude["provider"]!.GetValue<string>());
        Assert.Null(claude["headers"]);

        var r = Invoke(terminal: false, Path.Combine(AccountSamples.Folder, "codex-cli-bob-auth.json"),
            "--provider", "openai-compatible", "--base-url", "http://127.0.0.1:8089/v1", "--token-url", "http://127.0.0.1:8089/oauth/token",
            "--client-id", "test-client", "--models", "gpt-4o-mini, gpt-4o", "--priority", "2", "--weight", "5", "--label", "pool=shared");
        Assert.Equal(0, r.Exit);
        var ua = Doc(r.Stdout, "UpstreamAccount", "codex-bob-example-com");
        var spec = ua["spec"]!;
        Assert.Equal("openai-compatible", spec["provider"]!.GetValue<string>());
        Assert.Equal("http://127.0.0.1:8089/v1", spec["baseUrl"]!.GetValue<string>());
        Assert.Equal("http://127.0.0.1:8089/oauth/token", spec["credentials"]!["oauth"]!["tokenUrl"]!.GetValue<string>());
        Assert.Equal("test-client", spec["credentials"]!["oauth"]!["clientId"]!.GetValue<string>());
        Assert.Equal(["gpt-4o-mini", "gpt-4o"], spec["models"]!.AsArray().Select(m => m!["name"]!.GetValue<string>()));
        Assert.Equal((2L, 5L), (spec["priority"]!.GetValue<long>(), spec["weight"]!.GetValue<long>()));
        Assert.Equal("shared", ua["metadata"]!["labels"]!["pool"]!.GetValue<string>());
        Assert.Equal("codex", ua["metadata"]!["labels"]![AccountManifestBuilder.TypeLabel]!.GetValue<string>());
    }

    [Fact]
    public void A_bad_file_fails_the_run_naming_it_and_writes_nothing_unless_skip_invalid()
    {
        var input = AccountSamples.CopyTo(Path.Combine(_dir, "in"));
        File.WriteAllText(Path.Combine(input, "broken.json"), """{"type":"codex","email":"x@example.com","access_token":"FAKE-broken-access-9999" """);
        File.WriteAllText(Path.Combine(input, "no-refresh.json"), """{"type":"codex","email":"y@example.com","access_token":"FAKE-norefresh-access-9999"}""");
        var outDir = Path.Combine(_dir, "out");

        var r = Invoke(terminal: false, input, "--out", outDir);
        Assert.Equal(1, r.Exit);
        Assert.False(Directory.Exists(outDir));
        Assert.Equal("", r.Stdout);
        Assert.Contains($"error: {Path.Join(input, "broken.json")}: is not valid JSON", r.Stderr, StringComparison.Ordinal);
        Assert.Contains($"error: {Path.Join(input, "no-refresh.json")}: has no 'refresh_token'", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("2 unusable input(s); nothing was written", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("FAKE-broken", r.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("FAKE-norefresh", r.Stderr, StringComparison.Ordinal);

        var skipped = Invoke(terminal: false, input, "--out", outDir, "--skip-invalid");
        Assert.Equal(0, skipped.Exit);
        Assert.Contains($"skipped: {Path.Join(input, "broken.json")}", skipped.Stderr, StringComparison.Ordinal);
        Assert.Equal(3, Directory.GetFiles(outDir).Length);
        Assert.Contains("2 skipped", skipped.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_type_without_defaults_needs_the_target_flags()
    {
        var file = Path.Combine(_dir, "gemini.json");
        File.WriteAllText(file, """{"type":"gemini","email":"g@example.com","access_token":"FAKE-g","refresh_token":"FAKE-gr"}""");
        var r = Invoke(terminal: false, file);
        Assert.Equal(1, r.Exit);
        Assert.Contains("type 'gemini' has no built-in defaults", r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--provider, --base-url, --token-url, --client-id, --models", r.Stderr, StringComparison.Ordinal);

        var ok = Invoke(terminal: false, file, "--provider", "gemini-openai", "--base-url", "https://example.invalid/v1beta/openai",
            "--token-url", "https://example.invalid/token", "--client-id", "c", "--models", "gemini-2.5-pro");
        Assert.Equal(0, ok.Exit);
        Assert.Equal("gemini-openai", Doc(ok.Stdout, "UpstreamAccount", "gemini-g-example-com")["spec"]!["provider"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(new string[0], "name at least one auth file")]
    [InlineData(new[] { "x", "--provider", "bedrock" }, "--provider 'bedrock' is not one of")]
    [InlineData(new[] { "x", "--namespace", "Bad_NS" }, "--namespace 'Bad_NS' is not a valid namespace name")]
    [InlineData(new[] { "x", "--base-url", "ftp://x" }, "--base-url 'ftp://x' is not an absolute http(s) URL")]
    [InlineData(new[] { "x", "--weight", "0" }, "--weight '0' must be a whole number of at least 1")]
    [InlineData(new[] { "x", "--label", "no-equals" }, "--label 'no-equals' is not KEY=VALUE")]
    [InlineData(new[] { "x", "--out" }, "option --out needs a value")]
    [InlineData(new[] { "x", "--frobnicate" }, "unknown option '--frobnicate'")]
    public void Usage_errors_exit_2_and_say_what_is_wrong(string[] args, string expected)
    {
        var r = Invoke(false, args);
        Assert.Equal(2, r.Exit);
        Assert.Contains(expected, r.Stderr, StringComparison.Ordinal);
        Assert.Contains("--help", r.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_describes_the_command_and_missing_inputs_are_errors()
    {
        var help = Invoke(true, "--help");
        Assert.Equal(0, help.Exit);
        Assert.Contains("Usage: Gateway.Operator import-accounts", help.Stdout, StringComparison.Ordinal);
        Assert.Contains("not its subdirectories", help.Stdout, StringComparison.Ordinal);

        var missing = Invoke(false, Path.Combine(_dir, "nowhere"));
        Assert.Equal(1, missing.Exit);
        Assert.Contains("nowhere: no such file or directory", missing.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_directory_is_scanned_for_json_files_only_and_not_recursively()
    {
        var input = AccountSamples.CopyTo(Path.Combine(_dir, "in"));
        Directory.CreateDirectory(Path.Combine(input, "nested"));
        File.WriteAllText(Path.Combine(input, "nested", "d.json"), """{"type":"codex","email":"d@example.com","access_token":"FAKE-d","refresh_token":"FAKE-dr"}""");
        File.WriteAllText(Path.Combine(input, "notes.txt"), "not an auth file");
        var r = Invoke(false, input);
        Assert.Equal(0, r.Exit);
        Assert.DoesNotContain("d-example-com", r.Stdout, StringComparison.Ordinal);
        Assert.Equal(3, YamlDocuments.Parse(r.Stdout, "out").Count(d => d["kind"]!.GetValue<string>() == "UpstreamAccount"));
        Assert.Equal(Invoke(false, AccountSamples.Folder).Stdout, r.Stdout); // names only file names, never the folder
    }
}
