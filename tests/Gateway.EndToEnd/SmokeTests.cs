namespace Gateway.EndToEnd;

public sealed class BuildSmokeTests
{
    [Fact]
    public void Test_project_builds_and_runs() => Assert.True(typeof(BuildSmokeTests).Assembly.GetName().Name == "Gateway.EndToEnd");
}
