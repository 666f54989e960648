using System.Net;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Routing;

/// <summary>
/// The time-to-first-byte limit, in a class of its own: a 1 s limit shared with other tests would time out
/// their ordinary requests on a loaded machine and cool their accounts down.
/// </summary>
public sealed class UpstreamTimeoutTests : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(settings: new Dictionary<string, string?>
    {
        ["TokenGate:Proxy:UpstreamTimeToFirstByteSeconds"] = "1",
        ["TokenGate:Proxy:UpstreamTotalTimeoutSeconds"] = "30",
    });

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Time_to_first_byte_timeout_is_504_when_no_account_answers_in_time()
    {
        var c = await _h.CreateCallerAsync();
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
        request.Headers.Add("x-mock-latency-ms", "15000");
        using var response = await _h.Http.SendAsync(request);
        await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.GatewayTimeout, "upstream_timeout", "server_error");
        // Nothing reached a client: the reservation is released, no usage row.
        Assert.DoesNotContain(await _h.UsageEventsAsync(), e => e.KeyId == c.Key.KeyId);
    }
}
