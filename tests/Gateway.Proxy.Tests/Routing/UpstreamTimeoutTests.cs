using System.Net;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

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

    [Fact]
    public async Task Time_to_first_byte_timeout_fails_over_and_the_next_account_gets_its_own_deadline()
    {
        // Account "slow" never answers; "backup" answers at once. The request must be served by the backup after the
        // slow account's deadline (a deadline shared across attempts stayed expired and failed the backup at once: 504).
        var seen = 0;
        await using var slow = await HostileUpstream.StartAsync(async context =>
        {
            Interlocked.Increment(ref seen);
            try { await Task.Delay(Timeout.Infinite, context.RequestAborted); }
            catch (OperationCanceledException) { }
        });
        await _h.Projection.PutUpstreamsAsync(
            _h.MockUpstream("default/slow", priority: 0) with { BaseUrl = new Uri(slow.BaseUrl, "v1").ToString() },
            _h.MockUpstream("default/backup", priority: 1));
        var c = await _h.CreateCallerAsync();
        // Requests one after another: the first that reached the slow account (the proxy had the new list) must be a 200.
        var status = 0;
        await Eventually.TrueAsync(async () =>
        {
            using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""");
            using var response = await _h.Http.SendAsync(request);
            status = (int)response.StatusCode;
            return Volatile.Read(ref seen) > 0;
        }, "a request to reach the slow account");
        Assert.Equal(200, status);
        var usage = await Eventually.ReturnsAsync(async () => (await _h.UsageEventsAsync()).LastOrDefault(e => e.KeyId == c.Key.KeyId && e.Upstream == "default/backup"),
            "the usage event of the request the backup served");
        Assert.Equal(200, usage.Status);
    }
}
