using Gateway.Operator.Verify;
using Gateway.Testing;

namespace Gateway.Operator.Tests.Verify;

/// <summary>The verify command's exit codes, through the operator's own entry point where the console is enough.</summary>
public sealed class VerifyCommandTests : IAsyncLifetime
{
    private VerifyHarness _h = null!;

    public async Task InitializeAsync() => _h = await VerifyHarness.CreateAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Program_exits_0_on_a_clean_system_and_1_on_a_violation()
    {
        Assert.Equal(VerifyCommand.ExitClean, await Program.Main(["verify", "--settle-wait", "0", .. _h.ConfigArgs()]));
        await _h.RedisAsync("INCRBY", _h.F.Keys.Balance(_h.UserId), 1);
        Assert.Equal(VerifyCommand.ExitViolations, await Program.Main(["verify", "--settle-wait", "0", .. _h.ConfigArgs()]));
    }

    [Fact]
    public async Task Program_exits_3_when_Redis_or_PostgreSQL_is_unreachable()
    {
        Assert.Equal(VerifyCommand.ExitUnreachable, await Program.Main(["verify", .. _h.ConfigArgs(redis: "127.0.0.1:1")]));
        Assert.Equal(VerifyCommand.ExitUnreachable,
            await Program.Main(["verify", .. _h.ConfigArgs(postgres: "Host=127.0.0.1;Port=1;Username=postgres;Database=tokengate;Timeout=2")]));
    }

    [Fact]
    public async Task Unreachable_store_is_named_on_stderr_without_the_connection_string()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await VerifyCommand.RunAsync(["verify", .. _h.ConfigArgs(postgres: "Host=127.0.0.1;Port=1;Username=postgres;Password=hunter2-secret;Database=tokengate;Timeout=2")], stdout, stderr);
        Assert.Equal(VerifyCommand.ExitUnreachable, code);
        Assert.Contains("PostgreSQL at 127.0.0.1:1/tokengate", stderr.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2-secret", stderr.ToString() + stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exits_2_on_a_bad_argument_or_a_missing_connection_string_and_0_for_help()
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        Assert.Equal(VerifyCommand.ExitUsage, await VerifyCommand.RunAsync(["verify", "--settle-wait", "soon", .. _h.ConfigArgs()], stdout, stderr));
        Assert.Contains("--settle-wait", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal(VerifyCommand.ExitUsage, await VerifyCommand.RunAsync(["verify", "--ConnectionStrings:Redis", "", "--ConnectionStrings:Postgres", _h.F.Database.ConnectionString], stdout, stderr));
        Assert.Contains("ConnectionStrings:Redis is not set", stderr.ToString(), StringComparison.Ordinal);
        Assert.Equal(VerifyCommand.ExitClean, await VerifyCommand.RunAsync(["verify", "--help"], stdout, stderr));
        Assert.Contains("Exit codes", stdout.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Text_report_names_the_violation_and_the_user_but_no_secret()
    {
        await _h.RedisAsync("DECRBY", _h.F.Keys.Balance(_h.UserId), 1);
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await VerifyCommand.RunAsync(["verify", "--settle-wait", "0", .. _h.ConfigArgs()], stdout, stderr);
        Assert.Equal(VerifyCommand.ExitViolations, code);
        var text = stdout.ToString();
        Assert.Contains("balance_mismatch  user default/demo", text, StringComparison.Ordinal);
        Assert.Contains("1 µ$ short", text, StringComparison.Ordinal);
        Assert.Contains("result: 1 violation(s) (exit 1)", text, StringComparison.Ordinal);
        Assert.DoesNotContain(OperatorFixture.Pepper, text, StringComparison.Ordinal);
    }
}
