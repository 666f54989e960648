using Gateway.Core.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Options;

namespace Gateway.Core.Tests.Hosting;

public sealed class ListenersTests
{
    private static (Listeners Listeners, ConfigurationProblems Problems) Configure(params string[] args)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        var problems = new ConfigurationProblems();
        return (Listeners.Configure(builder, "http://0.0.0.0:8080", "http://0.0.0.0:8090", problems), problems);
    }

    [Fact]
    public void Defaults_are_the_fixed_ports_and_a_dynamic_public_port_gets_a_dynamic_management_port()
    {
        var (fixedPorts, p1) = Configure();
        Assert.False(p1.Any);
        Assert.Equal(8080, Assert.Single(fixedPorts.PublicAddresses).Port);
        Assert.Equal(8090, Assert.Single(fixedPorts.ManagementAddresses).Port);

        var (dynamic, p2) = Configure("--urls", "http://127.0.0.1:0");
        Assert.False(p2.Any);
        var management = Assert.Single(dynamic.ManagementAddresses);
        Assert.Equal(("127.0.0.1", 0), (management.Host, management.Port));

        var (configured, p3) = Configure("--urls", "http://127.0.0.1:0", "--TokenGate:Management:Urls", "http://0.0.0.0:9100;http://[::1]:9101");
        Assert.False(p3.Any);
        Assert.Equal([9100, 9101], configured.ManagementAddresses.Select(a => a.Port));
    }

    [Fact]
    public void Each_unusable_URL_is_one_problem_naming_the_setting()
    {
        var (_, problems) = Configure("--urls", "ftp://0.0.0.0:8443;http://localhost:0", "--TokenGate:Management:Urls", "http://0.0.0.0:9000/x");
        Assert.Equal(3, problems.Messages.Count);
        Assert.Contains(problems.Messages, m => m.StartsWith("urls", StringComparison.Ordinal) && m.Contains("ftp://0.0.0.0:8443", StringComparison.Ordinal));
        Assert.Contains(problems.Messages, m => m.StartsWith("urls", StringComparison.Ordinal) && m.Contains("localhost", StringComparison.Ordinal));
        Assert.Contains(problems.Messages, m => m.StartsWith("TokenGate:Management:Urls", StringComparison.Ordinal) && m.Contains("path", StringComparison.Ordinal));

        var (_, clash) = Configure("--urls", "http://0.0.0.0:8080", "--TokenGate:Management:Urls", "http://127.0.0.1:8080");
        Assert.Contains("port 8080", Assert.Single(clash.Messages), StringComparison.Ordinal);
    }

    [Fact]
    public void Options_validation_failures_are_reported_one_per_problem()
    {
        var single = new OptionsValidationException("x", typeof(object), ["A must be set.", "B must be positive."]);
        Assert.Equal(["A must be set.", "B must be positive."], ProcessHost.Problems(single));
        var ours = new InvalidConfigurationException("proxy", ["C is wrong."]);
        Assert.Equal(["A must be set.", "B must be positive.", "C is wrong."], ProcessHost.Problems(new AggregateException(single, ours)));
        Assert.Empty(ProcessHost.Problems(new InvalidOperationException("not a configuration problem")));
    }
}
