using System.Net;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;

namespace Gateway.Proxy.Tests.Auth;

/// <summary>Revocation, suspension and limits across two replicas, in exact mode and with quota leases held (issue #11:
/// leases change none of it).</summary>
public abstract class RevocationTests(bool leases) : IAsyncLifetime
{
    private ProxyHarness _h = null!;

    public sealed class Exact() : RevocationTests(leases: false);

    public sealed class Leased() : RevocationTests(leases: true);

    // A long TTL proves the change arrives by pub/sub, not by expiry.
    public async Task InitializeAsync() => _h = await ProxyHarness.StartAsync(proxies: 2, settings: new Dictionary<string, string?>
    {
        ["TokenGate:Proxy:PolicyCacheTtlSeconds"] = "600",
        ["TokenGate:Leases:Enabled"] = leases ? "true" : "false",
    });
    public async Task DisposeAsync() => await _h.DisposeAsync();

    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    private async Task<HttpStatusCode> StatusOn(int proxy, string key)
    {
        using var client = _h.ClientFor(proxy);
        using var r = await client.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", key, Chat));
        return r.StatusCode;
    }

    [Fact]
    public async Task Deleted_key_is_refused_by_both_replicas_within_a_second()
    {
        var c = await _h.CreateCallerAsync();
        Assert.Equal(HttpStatusCode.OK, await StatusOn(0, c.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await StatusOn(1, c.ApiKey));

        await _h.Projection.DeleteKeyAsync(c.KeyHash);
        await Eventually.TrueAsync(async () => await StatusOn(0, c.ApiKey) == HttpStatusCode.Unauthorized
            && await StatusOn(1, c.ApiKey) == HttpStatusCode.Unauthorized, "revocation on both replicas", TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Disabling_a_key_and_suspending_a_user_reach_both_replicas_within_a_second()
    {
        var c = await _h.CreateCallerAsync();
        var other = await _h.CreateCallerAsync();
        Assert.Equal(HttpStatusCode.OK, await StatusOn(0, c.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await StatusOn(1, c.ApiKey));
        Assert.Equal(HttpStatusCode.OK, await StatusOn(1, other.ApiKey));

        await _h.Projection.PutKeyAsync(c.KeyHash, c.Key with { Disabled = true });
        await Eventually.TrueAsync(async () => await StatusOn(0, c.ApiKey) == HttpStatusCode.Forbidden
            && await StatusOn(1, c.ApiKey) == HttpStatusCode.Forbidden, "key disabled on both replicas", TimeSpan.FromSeconds(1));

        await _h.Projection.PutUserAsync(other.User with { Suspended = true }, 10m);
        await Eventually.TrueAsync(async () => await StatusOn(0, other.ApiKey) == HttpStatusCode.Forbidden
            && await StatusOn(1, other.ApiKey) == HttpStatusCode.Forbidden, "user suspended on both replicas", TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Rate_limits_hold_across_two_replicas()
    {
        var c = await _h.CreateCallerAsync(key: k => k with { Limits = new Gateway.Core.Resources.KeyLimits { RequestsPerMinute = 3 } });
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 6; i++) statuses.Add(await StatusOn(i % 2, c.ApiKey));
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }
}
