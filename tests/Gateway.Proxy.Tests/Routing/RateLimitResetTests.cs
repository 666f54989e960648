using System.Net.Http.Headers;
using Gateway.Proxy.Routing;

namespace Gateway.Proxy.Tests.Routing;

/// <summary>What an upstream 429 asks for, read from the headers each provider sends.</summary>
public sealed class RateLimitResetTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

    private static HttpResponseHeaders Headers(params (string Name, string Value)[] pairs)
    {
        var response = new HttpResponseMessage();
        foreach (var (name, value) in pairs) response.Headers.TryAddWithoutValidation(name, value);
        return response.Headers;
    }

    [Fact]
    public void Retry_after_in_seconds_or_as_a_date()
    {
        Assert.Equal(TimeSpan.FromSeconds(30), RateLimitReset.Delay(Headers(("Retry-After", "30")), Now));
        Assert.Equal(TimeSpan.FromMinutes(2), RateLimitReset.Delay(Headers(("Retry-After", Now.AddMinutes(2).ToString("R"))), Now));
        Assert.Null(RateLimitReset.Delay(Headers(("Retry-After", Now.AddMinutes(-2).ToString("R"))), Now));
        Assert.Null(RateLimitReset.Delay(Headers(("Retry-After", "soon")), Now));
        Assert.Null(RateLimitReset.Delay(Headers(), Now));
    }

    [Fact]
    public void Retry_after_ms_wins_over_retry_after()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(1500), RateLimitReset.Delay(Headers(("retry-after-ms", "1500"), ("Retry-After", "30")), Now));
        Assert.Equal(TimeSpan.FromSeconds(30), RateLimitReset.Delay(Headers(("retry-after-ms", "-1"), ("Retry-After", "30")), Now));
    }

    [Fact]
    public void OpenAI_reset_headers_count_only_for_an_exhausted_window()
    {
        var tokens = Headers(("x-ratelimit-remaining-requests", "12"), ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "6m30.5s"));
        Assert.Equal(TimeSpan.FromSeconds(390.5), RateLimitReset.Delay(tokens, Now));
        var none = Headers(("x-ratelimit-remaining-requests", "3"), ("x-ratelimit-reset-requests", "20s"));
        Assert.Null(RateLimitReset.Delay(none, Now));
        var both = Headers(("x-ratelimit-remaining-requests", "0"), ("x-ratelimit-reset-requests", "20ms"),
            ("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "2s"));
        Assert.Equal(TimeSpan.FromSeconds(2), RateLimitReset.Delay(both, Now));
    }

    [Fact]
    public void Anthropic_reset_instants_count_only_for_an_exhausted_window()
    {
        var h = Headers(("anthropic-ratelimit-requests-remaining", "5"), ("anthropic-ratelimit-requests-reset", Now.AddMinutes(10).ToString("O")),
            ("anthropic-ratelimit-output-tokens-remaining", "0"), ("anthropic-ratelimit-output-tokens-reset", Now.AddSeconds(45).ToString("O")));
        Assert.Equal(TimeSpan.FromSeconds(45), RateLimitReset.Delay(h, Now));
    }

    [Theory]
    [InlineData("1h2m3.5s", 3_723_500)]
    [InlineData("6m0s", 360_000)]
    [InlineData("20ms", 20)]
    [InlineData("0.5s", 500)]
    public void Go_durations_parse(string text, double ms) => Assert.Equal(TimeSpan.FromMilliseconds(ms), RateLimitReset.ParseGoDuration(text));

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("5x")]
    [InlineData("s")]
    [InlineData("0s")]
    [InlineData("-3s")]
    public void Malformed_or_empty_durations_are_ignored(string text) => Assert.Null(RateLimitReset.ParseGoDuration(text));
}
