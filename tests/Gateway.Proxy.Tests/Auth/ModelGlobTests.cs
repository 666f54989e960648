using Gateway.Proxy.Auth;

namespace Gateway.Proxy.Tests.Auth;

public sealed class ModelGlobTests
{
    [Theory]
    [InlineData("gpt-4o*", "gpt-4o-mini", true)]
    [InlineData("gpt-4o*", "gpt-4", false)]
    [InlineData("*mini", "gpt-4o-mini", true)]
    [InlineData("claude-?-5", "claude-4-5", true)]
    [InlineData("claude-?-5", "claude-45-5", false)]
    [InlineData("*", "anything", true)]
    [InlineData("a*b*c", "axxbyyc", true)]
    [InlineData("a*b*c", "axxbyy", false)]
    [InlineData("exact", "exact", true)]
    [InlineData("exact", "exactly", false)]
    public void Matches_globs(string pattern, string model, bool expected) => Assert.Equal(expected, ModelGlob.IsMatch(pattern, model));

    [Fact]
    public void Empty_list_allows_every_model() => Assert.True(ModelGlob.Allowed([], "x"));
}
