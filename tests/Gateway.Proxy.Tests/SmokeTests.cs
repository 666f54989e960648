namespace Gateway.Proxy.Tests;

public sealed class BuildSmokeTests
{
    [Fact]
    public void Test_project_builds_and_runs() => Assert.True(typeof(BuildSmokeTests).Assembly.GetName().Name == "Gateway.Proxy.Tests");
}
