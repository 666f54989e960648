using System.Text.Json;
using Gateway.Operator.Sources;
using Gateway.Testing;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>
/// Issue 9's production defaults, on the built processes in the Production environment: a bad configuration
/// stops the process with exit code 2 and one line per problem; logs are JSON on request and free of
/// framework chatter (no EF Core command per query, no per-request hosting lines).
/// </summary>
public sealed class ProductionDefaultsTests
{
    // A 16-byte key: valid base64, wrong length for AES-256.
    private static readonly string ShortKey = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    private static async Task<ChildProcess> ExitsAsync(string project, string[] args, Dictionary<string, string> env)
    {
        var p = ChildProcess.StartApp(project, args, env);
        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.True(code == 2, $"exit code {code}\n{string.Join('\n', p.Stdout)}\n{string.Join('\n', p.Stderr)}");
        return p;
    }

    private static void AssertProblems(ChildProcess p, params string[] settings)
    {
        var problems = p.Stderr.Where(l => l.StartsWith("  - ", StringComparison.Ordinal)).ToList();
        Assert.True(problems.Count == settings.Length, "expected one line per problem:\n" + string.Join('\n', p.Stderr));
        foreach (var setting in settings) Assert.Single(problems, l => l.Contains(setting, StringComparison.Ordinal));
        Assert.Contains(p.Stderr, l => l.Contains("invalid configuration", StringComparison.Ordinal));
        Assert.DoesNotContain(p.Stderr, l => l.Contains("   at ", StringComparison.Ordinal)); // no stack trace
    }

    [Fact]
    public async Task Proxy_with_a_bad_configuration_exits_non_zero_naming_each_setting()
    {
        await using var p = await ExitsAsync("proxy/Gateway.Proxy", ["--urls", "http://127.0.0.1:0"], new()
        {
            ["TokenGate__Proxy__MaxAttempts"] = "0",
            ["TokenGate__Proxy__CooldownSeconds"] = "-1",
            ["TokenGate__LogFormat"] = "xml",
            ["TokenGate__Management__Urls"] = "ftp://127.0.0.1:0",
            ["TokenGate__PricesDirectory"] = "/nonexistent/prices",
            ["ConnectionStrings__Redis"] = "127.0.0.1:notaport",
            ["TokenGate__Credentials__Keys__short"] = ShortKey,
        });
        AssertProblems(p, "TokenGate:Proxy:MaxAttempts", "TokenGate:Proxy:CooldownSeconds", "TokenGate:LogFormat", "TokenGate:Management:Urls",
            "TokenGate:PricesDirectory", "ConnectionStrings:Redis", "TokenGate:PepperFile", "TokenGate:Credentials:Keys:short must be 32 bytes");
        Assert.DoesNotContain(p.Stderr, l => l.Contains(ShortKey, StringComparison.Ordinal)); // key material is never printed
    }

    [Fact]
    public async Task Operator_with_a_bad_configuration_exits_non_zero_naming_each_setting()
    {
        await using var p = await ExitsAsync("operator/Gateway.Operator", ["--urls", "http://127.0.0.1:0"], new()
        {
            ["TokenGate__PublicBaseUrl"] = "not a url",
            ["TokenGate__Ledger__BatchSize"] = "0",
            ["TokenGate__Pepper"] = "0123456789abcdef0123",
        });
        // No credential key and no development opt-out: the operator refuses to store upstream credentials in plaintext.
        AssertProblems(p, "ConnectionStrings:Postgres", "ConnectionStrings:Redis", "TokenGate:Source", "TokenGate:PublicBaseUrl", "TokenGate:Ledger:BatchSize",
            "No credential encryption key configured");
    }

    [Fact]
    public async Task Portal_with_a_bad_configuration_exits_non_zero_naming_each_setting()
    {
        await using var p = await ExitsAsync("portal/Gateway.Portal", ["--urls", "http://127.0.0.1:0"], new()
        {
            ["TokenGate__Management__Urls"] = "http://127.0.0.1:0/metrics-here",
        });
        AssertProblems(p, "ConnectionStrings:Postgres", "TokenGate:Management:Urls");
    }

    [Fact]
    public async Task Production_operator_logs_json_without_a_line_per_database_command()
    {
        await using var db = await TestDatabase.CreateAsync();
        var root = Path.Combine(Path.GetTempPath(), "tg-logs-" + Guid.NewGuid().ToString("N")[..8]);
        var samples = Path.Combine(root, "samples");
        Directory.CreateDirectory(samples);
        foreach (var f in Directory.GetFiles(RepoPaths.Samples, "*.yaml")) File.Copy(f, Path.Combine(samples, Path.GetFileName(f)));
        try
        {
            await using var op = ChildProcess.StartApp("operator/Gateway.Operator", ["--urls", "http://127.0.0.1:0", "--source", "dir:" + samples, "--state-dir", Path.Combine(root, "state")], new Dictionary<string, string>
            {
                ["ConnectionStrings__Postgres"] = db.ConnectionString,
                ["ConnectionStrings__Redis"] = TestEnvironment.Redis,
                ["TokenGate__Pepper"] = "logs-test-pepper-0123456789abcdef",
                ["TokenGate__Redis__KeyPrefix"] = TestEnvironment.UniqueRedisPrefix(),
                ["TokenGate__LogFormat"] = "json",
                ["TokenGate__Credentials__KeysDirectory"] = TestCredentialKeys.WriteDirectory(root),
            });
            var url = (await op.ListeningUrlsAsync(1))[0];
            using var http = new HttpClient();
            await Eventually.TrueAsync(async () => (await http.GetAsync(new Uri(url, "readyz"))).IsSuccessStatusCode, "the operator to be ready", TimeSpan.FromSeconds(60));
            // Issuing the demo key takes dozens of SQL commands: at EF Core's Information level each would be logged.
            await Eventually.TrueAsync(async () => await new FileResourceSource(samples, Path.Combine(root, "state")).GetSecretAsync("default", "demo-apikey", CancellationToken.None) is not null,
                "the demo key to be issued", TimeSpan.FromSeconds(60));
            for (var i = 0; i < 5; i++) await http.GetStringAsync(new Uri(url, "healthz"));

            var lines = op.Stdout.Where(l => l.Length > 0).ToList();
            Assert.NotEmpty(lines);
            var entries = lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList(); // every line is one JSON object
            Assert.All(entries, e =>
            {
                Assert.True(e.TryGetProperty("Timestamp", out _));
                Assert.True(e.TryGetProperty("LogLevel", out _));
                Assert.True(e.TryGetProperty("Category", out _));
            });
            Assert.Contains(entries, e => e.GetProperty("Message").GetString() == "Database schema is up to date");
            Assert.DoesNotContain(entries, e => e.GetProperty("Category").GetString()!.StartsWith("Microsoft.EntityFrameworkCore", StringComparison.Ordinal)
                                               && e.GetProperty("LogLevel").GetString() is "Information" or "Debug" or "Trace");
            Assert.DoesNotContain(entries, e => e.GetProperty("Category").GetString()!.StartsWith("Microsoft.AspNetCore", StringComparison.Ordinal)
                                               && e.GetProperty("LogLevel").GetString() == "Information");
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }
}
