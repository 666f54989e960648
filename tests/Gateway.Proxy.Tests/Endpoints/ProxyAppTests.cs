using Gateway.Core.Hosting;
using Microsoft.Extensions.Configuration;

namespace Gateway.Proxy.Tests.Endpoints;

public sealed class ProxyAppTests
{
    private static InvalidConfigurationException BuildFails(Dictionary<string, string?> settings) =>
        Assert.Throws<InvalidConfigurationException>(() => ProxyApp.Build(["--urls", "http://127.0.0.1:0"], b => b.Configuration.AddInMemoryCollection(settings)));

    [Fact]
    public void Start_up_fails_with_a_clear_message_when_the_pepper_is_missing()
    {
        var ex = BuildFails(new() { ["TokenGate:PricesDirectory"] = Infrastructure.RepositoryRoot.PricesDirectory });
        Assert.Contains("TokenGate:PepperFile", ex.Message);
    }

    [Fact]
    public void Start_up_fails_listing_every_invalid_setting()
    {
        var ex = BuildFails(new()
        {
            ["TokenGate:Pepper"] = "short",
            ["TokenGate:PricesDirectory"] = "/nonexistent/prices",
            ["TokenGate:Proxy:MaxAttempts"] = "0",
            ["TokenGate:Proxy:UpstreamTotalTimeoutSeconds"] = "1",
            ["TokenGate:Proxy:AccountUsageSyncMilliseconds"] = "10",
        });
        Assert.Contains("pepper", ex.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("/nonexistent/prices", ex.Message);
        Assert.Contains("MaxAttempts", ex.Message);
        Assert.Contains("UpstreamTotalTimeoutSeconds", ex.Message);
        Assert.Contains("AccountUsageSyncMilliseconds", ex.Message);
    }
}
