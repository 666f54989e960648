using Gateway.Core.Resources;

namespace Gateway.Core.Tests.Resources;

/// <summary>What an UpstreamAccount's headers and paths may say.</summary>
public sealed class UpstreamRequestRulesTests
{
    [Fact]
    public void Ordinary_headers_and_paths_are_accepted()
    {
        Assert.Null(UpstreamRequestRules.HeadersProblem(new Dictionary<string, string> { ["ChatGPT-Account-Id"] = "acct-123", ["OpenAI-Beta"] = "responses=experimental", ["x-tab"] = "a\tb" }));
        Assert.Null(UpstreamRequestRules.PathsProblem(new Dictionary<string, string> { ["/responses"] = "/codex/responses", ["/chat/completions"] = "/v2/chat" }));
        Assert.Null(UpstreamRequestRules.HeadersProblem(null));
        Assert.Null(UpstreamRequestRules.PathsProblem(null));
    }

    [Theory]
    [InlineData("Authorization", "Bearer x", "set by the proxy")]
    [InlineData("x-api-key", "k", "set by the proxy")]
    [InlineData("HOST", "evil.example", "set by the proxy")]
    [InlineData("Transfer-Encoding", "chunked", "set by the proxy")]
    [InlineData("x-tokengate-user", "u", "set by the proxy")]
    [InlineData("Bad Name", "v", "not a valid header name")]
    [InlineData("", "v", "not a valid header name")]
    [InlineData("x-ok", "a\r\nInjected: yes", "control character")]
    [InlineData("x-ok", "nul\0", "control character")]
    public void Reserved_invalid_or_injecting_headers_are_refused(string name, string value, string expected)
    {
        var problem = UpstreamRequestRules.HeadersProblem(new Dictionary<string, string> { [name] = value });
        Assert.NotNull(problem);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Too_many_or_too_long_headers_are_refused()
    {
        var many = Enumerable.Range(0, UpstreamRequestRules.MaxHeaders + 1).ToDictionary(i => "x-h" + i, _ => "v");
        Assert.Contains("at most", UpstreamRequestRules.HeadersProblem(many), StringComparison.Ordinal);
        Assert.Contains("at most", UpstreamRequestRules.HeadersProblem(new Dictionary<string, string> { ["x-long"] = new string('a', UpstreamRequestRules.MaxHeaderValueLength + 1) }), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/chat/completions", "/x", "not an overridable path")]
    [InlineData("/responses", "responses", "must start with '/'")]
    [InlineData("/responses", "/a?b=c", "must start with '/'")]
    [InlineData("/responses", "/a#frag", "must start with '/'")]
    [InlineData("/responses", "/../admin", "must start with '/'")]
    [InlineData("/responses", "/a b", "must start with '/'")]
    [InlineData("/responses", "", "must start with '/'")]
    public void Unknown_routes_and_unsafe_paths_are_refused(string route, string path, string expected)
    {
        var problem = UpstreamRequestRules.PathsProblem(new Dictionary<string, string> { [route] = path });
        Assert.NotNull(problem);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Usage_windows_need_a_known_period_once_and_a_positive_limit()
    {
        Assert.Null(UpstreamRequestRules.WindowsProblem(null));
        Assert.Null(UpstreamRequestRules.WindowsProblem([new UpstreamWindow { Period = "5h", Requests = 50 }, new UpstreamWindow { Period = "7d", Tokens = 1_000_000 }]));
        Assert.Contains("not one of 5h, 1d, 7d", UpstreamRequestRules.WindowsProblem([new UpstreamWindow { Period = "1m", Requests = 5 }]), StringComparison.Ordinal);
        Assert.Contains("listed twice", UpstreamRequestRules.WindowsProblem([new UpstreamWindow { Period = "1d", Requests = 5 }, new UpstreamWindow { Period = "1d", Tokens = 5 }]), StringComparison.Ordinal);
        Assert.Contains("needs requests, tokens or both", UpstreamRequestRules.WindowsProblem([new UpstreamWindow { Period = "7d" }]), StringComparison.Ordinal);
        Assert.Contains("must be positive", UpstreamRequestRules.WindowsProblem([new UpstreamWindow { Period = "7d", Tokens = 0 }]), StringComparison.Ordinal);
    }
}
