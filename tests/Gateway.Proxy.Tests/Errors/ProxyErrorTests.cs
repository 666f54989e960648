using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Requests;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Tests.Errors;

public sealed class ProxyErrorTests
{
    [Fact]
    public async Task Openai_shape_has_message_type_param_and_code()
    {
        var (status, json) = await Render(ProxyError.InvalidKey, ApiDialect.OpenAI);
        Assert.Equal(401, status);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Null, error.GetProperty("param").ValueKind);
        Assert.Equal(ProxyError.InvalidKey.Message, error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Anthropic_shape_has_type_error_and_error_type()
    {
        var (status, json) = await Render(ProxyError.BodyTooLarge, ApiDialect.Anthropic);
        Assert.Equal(413, status);
        Assert.Equal("error", json.RootElement.GetProperty("type").GetString());
        Assert.Equal("request_too_large", json.RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task Messages_are_json_escaped()
    {
        var (_, json) = await Render(ProxyError.ModelNotAllowed, ApiDialect.OpenAI, "model \"x\"\n");
        Assert.Equal("model \"x\"\n", json.RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(RejectionReason.KeyRpm, "rate_limit_exceeded")]
    [InlineData(RejectionReason.UserTpd, "rate_limit_exceeded")]
    [InlineData(RejectionReason.KeyConcurrency, "rate_limit_exceeded")]
    [InlineData(RejectionReason.InsufficientBalance, "insufficient_quota")]
    [InlineData(RejectionReason.BudgetExhausted, "insufficient_quota")]
    [InlineData(RejectionReason.KeySpendLimit, "insufficient_quota")]
    [InlineData(RejectionReason.KeyTokenLimit, "insufficient_quota")]
    public void Every_rejection_is_a_429_with_a_specific_message(RejectionReason reason, string code)
    {
        var (error, message) = Rejections.For(reason);
        Assert.Equal(429, error.Status);
        Assert.Equal(code, error.Code);
        Assert.False(string.IsNullOrWhiteSpace(message));
    }

    [Theory]
    [InlineData(20, "20ms")]
    [InlineData(1500, "1.5s")]
    [InlineData(360_000, "6m0s")]
    [InlineData(61_500, "1m2s")]
    public void Reset_durations_use_openai_format(int ms, string expected) =>
        Assert.Equal(expected, Gateway.Proxy.Endpoints.ProxyRequestHandler.FormatReset(TimeSpan.FromMilliseconds(ms)));

    [Theory]
    [InlineData(0L, "0")]
    [InlineData(1_000L, "1")]
    [InlineData(1_500L, "1.5")]
    [InlineData(1_050L, "1.05")]
    [InlineData(1_007L, "1.007")]
    [InlineData(342L, "0.342")]
    [InlineData(12_340L, "12.34")]
    public void Overhead_milliseconds_have_at_most_three_decimals_without_trailing_zeros(long micros, string expected) =>
        Assert.Equal(expected, Gateway.Proxy.Endpoints.ProxyRequestHandler.FormatMilliseconds(micros * System.Diagnostics.Stopwatch.Frequency / 1_000_000));

    private static async Task<(int Status, JsonDocument Json)> Render(ProxyError error, ApiDialect dialect, string? message = null)
    {
        var context = new DefaultHttpContext();
        var body = new MemoryStream();
        context.Response.Body = body;
        await (message is null ? error.WriteAsync(context, dialect) : error.WriteAsync(context, dialect, message));
        Assert.Equal("application/json", context.Response.ContentType);
        return (context.Response.StatusCode, JsonDocument.Parse(body.ToArray()));
    }
}
