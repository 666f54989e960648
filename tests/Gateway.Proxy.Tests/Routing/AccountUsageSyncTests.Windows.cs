using System.Net;
using System.Net.Sockets;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Routing;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Tests.Routing;

/// <summary>Issue #10, item 6: the rolling usage windows shared between replicas, refresh leases, and selection by headroom.</summary>
public sealed partial class AccountUsageSyncTests
{
    private static UpstreamProjection Windowed(string name, long requests5h, bool oauth = false) =>
        Account(name) with { Windows = [new UpstreamWindow { Period = "5h", Requests = requests5h }], OAuth = oauth };

    [Fact]
    public async Task Window_counts_are_shared_between_replicas_and_accounts_without_windows_are_still_counted()
    {
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Windowed("default/sub", requests5h: 10), Account("default/plain")];
        var a = new Replica(_redis, _keys, clock, accounts);
        var b = new Replica(_redis, _keys, clock, accounts);

        for (var i = 0; i < 3; i++) a.Health("default/sub").CountRequest();
        a.Health("default/sub").CountTokens(120);
        a.Health("default/plain").CountRequest();
        Assert.True(await a.SyncAsync());
        Assert.True(await b.SyncAsync());

        var onB = b.Health("default/sub");
        Assert.Equal((3, 120), onB.Windows!.Of("5h"));
        Assert.Equal(0.7, onB.Headroom(accounts[0].Windows), 9);
        // The plain account's traffic is in its windows too (the operator's status reads them), but B, which sent
        // nothing to it and has no window limits to check, does not read them.
        var plain = await UpstreamWindows.AddAndReadAsync(_redis, _keys, [new WindowDelta("default/plain", 0, 0)], default);
        Assert.Equal((1, 0), plain[0].Of("1d"));
        Assert.Null(b.Health("default/plain").Windows);

        // Counts are pushed once: further syncs without traffic leave the totals as they are.
        Assert.True(await a.SyncAsync());
        Assert.True(await a.SyncAsync());
        Assert.Equal((3, 120), a.Health("default/sub").Windows!.Of("5h"));
    }

    [Fact]
    public async Task Window_counts_that_could_not_be_pushed_go_with_the_next_sync()
    {
        await using var down = new RespClient(RespClientOptions.Parse("127.0.0.1:" + ClosedPort() + ",connectTimeout=200"), NullLogger<RespClient>.Instance);
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Windowed("default/sub", requests5h: 10)];
        var offline = new Replica(down, _keys, clock, accounts);
        offline.Health("default/sub").CountRequest();
        offline.Health("default/sub").CountTokens(50);
        Assert.False(await offline.SyncAsync());
        // Still counted locally against the window while Redis is away.
        Assert.Equal(0.9, offline.Health("default/sub").Headroom(accounts[0].Windows), 9);

        // The same counters, now with Redis: the pending counts arrive once.
        var (requests, tokens) = offline.Health("default/sub").TakeWindowDelta();
        var online = new Replica(_redis, _keys, clock, accounts);
        online.Health("default/sub").ReturnWindowDelta(requests, tokens);
        Assert.True(await online.SyncAsync());
        Assert.Equal((1, 50), online.Health("default/sub").Windows!.Of("7d"));
    }

    [Fact]
    public async Task An_oauth_account_counts_as_refreshing_while_the_operator_holds_its_refresh_lease()
    {
        var clock = new ManualTimeProvider(Noon);
        var replica = new Replica(_redis, _keys, clock, [Account("default/sub") with { OAuth = true }, Account("default/key")]);
        Assert.True(await replica.SyncAsync());
        Assert.False(replica.Health("default/sub").Refreshing);

        await _redis.ExecuteAsync("SET", [_keys.UpstreamRefreshLease("default/sub"), "operator-0:abc", "PX", 60_000]);
        Assert.True(await replica.SyncAsync());
        Assert.True(replica.Health("default/sub").Refreshing);
        Assert.False(replica.Health("default/key").Refreshing);

        await _redis.ExecuteAsync("DEL", [_keys.UpstreamRefreshLease("default/sub")]);
        Assert.True(await replica.SyncAsync());
        Assert.False(replica.Health("default/sub").Refreshing);
    }

    [Fact]
    public async Task Three_accounts_with_different_remaining_windows_share_the_traffic_by_headroom()
    {
        // 80 %, 40 % and 10 % of each account's 5-hour window left (what other replicas and earlier traffic used), a
        // fourth with its window used up. Requests through two proxy replicas split about 8 : 4 : 1 and none goes to
        // the exhausted account; the shares move little during the test (120 requests against windows of 100,000).
        await using var h = await ProxyHarness.StartAsync(
            proxies: 2,
            settings: new Dictionary<string, string?> { ["TokenGate:Proxy:AccountUsageSyncMilliseconds"] = "100" },
            upstreams: x => [.. new[] { ("a", 20_000), ("b", 60_000), ("c", 90_000), ("full", 100_000) }.Select(p =>
                x.MockUpstream("default/" + p.Item1) with
                {
                    Windows = [new UpstreamWindow { Period = "5h", Requests = 100_000 }],
                    Headers = new() { ["x-test-account"] = p.Item1 },
                })]);
        foreach (var (name, used) in new[] { ("a", 20_000L), ("b", 60_000L), ("c", 90_000L), ("full", 100_000L) })
            await UpstreamWindows.AddAndReadAsync(h.Redis, h.Keys, [new WindowDelta("default/" + name, used, 0)], default);
        var caller = await h.CreateCallerAsync();
        using var first = h.ClientFor(0);
        using var second = h.ClientFor(1);
        // A replica learns the upstream list from its first request, then its next sync brings the window totals.
        foreach (var client in new[] { first, second })
        {
            using var warmup = await client.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat));
            Assert.Equal(HttpStatusCode.OK, warmup.StatusCode);
        }
        for (var proxy = 0; proxy < 2; proxy++)
        {
            var catalog = h.ProxyServices(proxy).GetRequiredService<UpstreamCatalog>();
            await Eventually.TrueAsync(() => Task.FromResult(catalog.TryGetHealth("default/full", out var health) && health.Windows is not null),
                $"replica {proxy}'s sync to bring back the window totals");
        }
        // The mock keeps its last 1,000 requests: start from none.
        (await h.MockHttp.DeleteAsync("/_mock/requests")).EnsureSuccessStatusCode();

        const int n = 650;
        for (var i = 0; i < n; i++)
        {
            using var response = await (i % 2 == 0 ? first : second).SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        var counts = (await h.MockRequestsAsync()).GroupBy(r => r.Headers["x-test-account"]).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(n, counts.Values.Sum());
        Assert.False(counts.ContainsKey("full"));
        // Expected 400 / 200 / 50 (binomial standard deviations 12, 12 and 7).
        Assert.InRange(counts.GetValueOrDefault("a"), 340, 460);
        Assert.InRange(counts.GetValueOrDefault("b"), 145, 255);
        Assert.InRange(counts.GetValueOrDefault("c"), 20, 85);

        // And every request is in the shared windows: the operator's status and the other replicas see them.
        await Eventually.TrueAsync(async () =>
        {
            var now = await UpstreamWindows.AddAndReadAsync(h.Redis, h.Keys,
                [.. new[] { "a", "b", "c", "full" }.Select(name => new WindowDelta("default/" + name, 0, 0))], default);
            return now.Sum(t => t.Of("5h").Requests) == 20_000 + 60_000 + 90_000 + 100_000 + n + 2;
        }, "every request counted in the 5h windows");
    }
}
