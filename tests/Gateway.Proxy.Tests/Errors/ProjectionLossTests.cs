using System.Net;
using Gateway.Core.Projection;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Errors;

/// <summary>
/// Issue #12 (Redis flushed): while Redis has lost the projection (no epoch) the proxy tells clients to retry (503
/// gateway_unavailable) instead of calling their key invalid or their balance empty, and a request in flight when its
/// reservation vanished is charged again (through the usage outbox) once its user's balance is back.
/// </summary>
public sealed class ProjectionLossTests
{
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task An_unknown_key_is_invalid_with_an_epoch_and_a_retry_without_one()
    {
        await using var h = await ProxyHarness.StartAsync();
        var unknown = Gateway.Core.Keys.ApiKeyFormat.Generate();
        using (var response = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", unknown, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.Unauthorized, "invalid_api_key", "invalid_request_error");

        await h.Redis.ExecuteAsync("DEL", [h.Keys.Epoch]);
        var other = Gateway.Core.Keys.ApiKeyFormat.Generate();
        using (var response = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", other, Chat)))
        {
            var error = await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.ServiceUnavailable, "gateway_unavailable", "server_error");
            Assert.Contains("rebuilt", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        Assert.Empty(await h.MockRequestsAsync());
    }

    [Fact]
    public async Task A_caller_whose_balance_is_gone_is_told_to_retry_and_nothing_is_counted_or_forwarded()
    {
        await using var h = await ProxyHarness.StartAsync();
        var c = await h.CreateCallerAsync();
        await h.Redis.ExecuteAsync("DEL", [h.Keys.Balance(c.User.UserId)]);
        using (var response = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(response, HttpStatusCode.ServiceUnavailable, "gateway_unavailable", "server_error");
        using (var usage = await h.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/usage") { Headers = { { "Authorization", "Bearer " + c.ApiKey } } }))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, usage.StatusCode);
        Assert.Empty(await h.MockRequestsAsync());
        Assert.Equal(0, (await h.Redis.ExecuteAsync("ZCARD", [h.Keys.Reservations(ProjectionKeys.ShardOf(c.User.UserId))])).AsInt64());
        Assert.Equal(0, (await h.Redis.ExecuteAsync("EXISTS", [h.Keys.UserRateCounters(c.User.UserId)])).AsInt64());

        // Once the operator has put the balance back, the same request is served.
        await h.Projection.PutUserAsync(c.User, 10m);
        using var ok = await h.Http.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }

    [Fact]
    public async Task A_request_in_flight_when_Redis_loses_its_data_is_charged_once_the_balance_is_rebuilt()
    {
        // Exact mode on purpose: this is about an exact admission's reservation hash vanishing mid-request. The leased
        // form (the lease and its in-flight record vanish) is LeaseBookTests' A_lease_Redis_lost_... and LeaseChaosTests.
        await using var h = await ProxyHarness.StartAsync(settings: new Dictionary<string, string?> { ["TokenGate:Leases:Enabled"] = "false" });
        var c = await h.CreateCallerAsync(balance: 10m);
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", c.ApiKey, Chat);
        request.Headers.Add("x-mock-latency-ms", "1500");
        var sending = h.Http.SendAsync(request);

        // While the upstream thinks, Redis loses the projection: the reservation, the balance, the epoch.
        await Eventually.TrueAsync(async () => (await h.Redis.ExecuteAsync("ZCARD", [h.Keys.Reservations(ProjectionKeys.ShardOf(c.User.UserId))])).AsInt64() == 1, "the request to be admitted");
        var id = (await h.Redis.ExecuteAsync("ZRANGE", [h.Keys.Reservations(ProjectionKeys.ShardOf(c.User.UserId)), 0, -1])).Items[0].AsString()!;
        await h.Redis.ExecuteAsync("DEL", [h.Keys.Reservation(c.User.UserId, id), h.Keys.Reservations(ProjectionKeys.ShardOf(c.User.UserId)), h.Keys.Balance(c.User.UserId), h.Keys.Epoch,
            h.Keys.KeyLifetime(c.User.UserId, c.Key.KeyId)]);
        using (var response = await sending) Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // The operator rebuilds: balance from the ledger (which never saw this request), then a new epoch.
        await h.Redis.ExecuteAsync("SET", [h.Keys.Balance(c.User.UserId), 7_000_000]);
        await h.Redis.ExecuteAsync("SET", [h.Keys.Epoch, "2"]);
        var usage = await h.WaitForUsageAsync(c.Key.KeyId);
        Assert.Equal(id, usage.RequestId);
        Assert.Equal(32, usage.RechargeId.Length);
        Assert.True(usage.RechargeMicros > 0);
        Assert.Equal(7_000_000 - usage.RechargeMicros, await h.Projection.BalanceMicrosAsync(c.User.UserId));
        Assert.Single(await h.Projection.ReadUsageAsync());
    }
}
