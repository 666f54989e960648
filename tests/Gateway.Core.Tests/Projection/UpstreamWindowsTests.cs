using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Testing;

namespace Gateway.Core.Tests.Projection;

/// <summary>The rolling windows against a real Redis, at instants the tests choose (the script's clock override).</summary>
public sealed class UpstreamWindowsTests : IAsyncLifetime
{
    private static readonly long T0 = new DateTimeOffset(2026, 3, 2, 10, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
    private readonly ProjectionKeys _keys = new(TestEnvironment.UniqueRedisPrefix());
    private RespClient _redis = null!;

    public async Task InitializeAsync() => _redis = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync()
    {
        await _redis.ExecuteAsync("DEL", [_keys.UpstreamWindows("ns/a"), _keys.UpstreamWindows("ns/b")]);
        await _redis.DisposeAsync();
    }

    private async Task<WindowTotals> AddAsync(string account, long requests, long tokens, TimeSpan at) =>
        (await UpstreamWindows.AddAndReadAsync(_redis, _keys, [new WindowDelta(account, requests, tokens)], default, T0 + (long)at.TotalMilliseconds))[0];

    private static long Ms(TimeSpan t) => (long)t.TotalMilliseconds;

    [Fact]
    public async Task Counts_add_up_per_account_in_every_window()
    {
        await AddAsync("ns/a", 3, 300, TimeSpan.Zero);
        await AddAsync("ns/b", 1, 10, TimeSpan.Zero);
        var a = await AddAsync("ns/a", 2, 200, TimeSpan.FromSeconds(20));
        Assert.Equal([5, 5, 5, 5], a.Requests);
        Assert.Equal([500, 500, 500, 500], a.Tokens);
        // Several accounts in one call, read only (zero deltas), in the order given.
        var both = await UpstreamWindows.AddAndReadAsync(_redis, _keys, [new WindowDelta("ns/b", 0, 0), new WindowDelta("ns/a", 0, 0)], default, T0 + 30_000);
        Assert.Equal((1, 10), both[0].Of("5h"));
        Assert.Equal((5, 500), both[1].Of("7d"));
    }

    [Fact]
    public async Task Each_window_lets_go_of_what_is_older_than_its_period()
    {
        await AddAsync("ns/a", 10, 1000, TimeSpan.Zero);
        await AddAsync("ns/a", 1, 100, TimeSpan.FromHours(2));

        var t = await AddAsync("ns/a", 0, 0, TimeSpan.FromHours(2) + TimeSpan.FromSeconds(61));
        Assert.Equal((0, 0), t.Of("1m"));
        Assert.Equal((11, 1100), t.Of("5h"));

        // Five hours and one bucket (5 min) later the first requests left the 5h window, not the later ones.
        t = await AddAsync("ns/a", 0, 0, TimeSpan.FromHours(5) + TimeSpan.FromMinutes(6));
        Assert.Equal((1, 100), t.Of("5h"));
        Assert.Equal((11, 1100), t.Of("1d"));

        t = await AddAsync("ns/a", 0, 0, TimeSpan.FromDays(1) + TimeSpan.FromMinutes(25));
        Assert.Equal((1, 100), t.Of("1d"));
        t = await AddAsync("ns/a", 0, 0, TimeSpan.FromDays(1) + TimeSpan.FromHours(2) + TimeSpan.FromMinutes(25));
        Assert.Equal((0, 0), t.Of("1d"));
        Assert.Equal((11, 1100), t.Of("7d"));

        t = await AddAsync("ns/a", 0, 0, TimeSpan.FromDays(7) + TimeSpan.FromHours(6));
        Assert.Equal([0, 0, 0, 0], t.Requests);
        Assert.Equal([0, 0, 0, 0], t.Tokens);
    }

    [Fact]
    public async Task A_window_covers_its_period_to_within_one_bucket()
    {
        // Requests in the first minute of a 5-minute bucket are still counted 4h59m later and gone after 5h + one bucket.
        await AddAsync("ns/a", 1, 0, TimeSpan.Zero);
        Assert.Equal(1, (await AddAsync("ns/a", 0, 0, TimeSpan.FromHours(5) - TimeSpan.FromMinutes(1))).Of("5h").Requests);
        Assert.Equal(0, (await AddAsync("ns/a", 0, 0, TimeSpan.FromHours(5) + TimeSpan.FromMinutes(5))).Of("5h").Requests);
    }

    [Fact]
    public async Task Steady_traffic_keeps_the_hash_bounded_and_the_totals_equal_to_the_last_period()
    {
        // One request a minute for 26 hours: the 5h window holds ~300, the 1d window ~1440, and the hash stays within
        // 60 buckets per window however long it runs.
        var minutes = 26 * 60;
        WindowTotals t = WindowTotals.Zero;
        for (var m = 0; m < minutes; m++) t = await AddAsync("ns/a", 1, 10, TimeSpan.FromMinutes(m));
        Assert.InRange(t.Of("5h").Requests, 295, 300);
        Assert.InRange(t.Of("1d").Requests, 1416, 1440);
        Assert.Equal(minutes, t.Of("7d").Requests);
        Assert.Equal(1, t.Of("1m").Requests);
        var fields = (await _redis.ExecuteAsync("HLEN", [_keys.UpstreamWindows("ns/a")])).AsInt64();
        Assert.InRange(fields, 1, UpstreamWindows.Periods.Length * (3 + 2 * UpstreamWindows.Buckets));
        var ttl = (await _redis.ExecuteAsync("TTL", [_keys.UpstreamWindows("ns/a")])).AsInt64();
        Assert.InRange(ttl, (long)TimeSpan.FromDays(7).TotalSeconds, (long)TimeSpan.FromDays(8).TotalSeconds);
    }

    [Fact]
    public async Task A_clock_stepped_back_keeps_counting_in_the_newest_bucket()
    {
        await AddAsync("ns/a", 1, 1, TimeSpan.FromMinutes(30));
        var t = await AddAsync("ns/a", 1, 1, TimeSpan.FromMinutes(20));
        Assert.Equal([2, 2, 2, 2], t.Requests);
        // And the buckets still leave when their time comes (30 min + 5 h + one bucket).
        t = await AddAsync("ns/a", 0, 0, TimeSpan.FromMinutes(30) + TimeSpan.FromHours(5) + TimeSpan.FromMinutes(5));
        Assert.Equal(0, t.Of("5h").Requests);
    }

    [Fact]
    public async Task The_server_clock_is_used_when_no_instant_is_given()
    {
        var t = (await UpstreamWindows.AddAndReadAsync(_redis, _keys, [new WindowDelta("ns/b", 4, 40)], default))[0];
        Assert.Equal([4, 4, 4, 4], t.Requests);
        Assert.Equal([40, 40, 40, 40], t.Tokens);
    }

    [Fact]
    public void Headroom_is_the_smallest_free_share_over_every_limit()
    {
        var totals = new WindowTotals([0, 500, 900, 2000], [0, 10_000, 50_000, 90_000]);
        Assert.Equal(1, UpstreamWindows.Headroom(null, totals));
        Assert.Equal(0.5, UpstreamWindows.Headroom([new UpstreamWindow { Period = "5h", Requests = 1000 }], totals), 9);
        Assert.Equal(0.1, UpstreamWindows.Headroom([new UpstreamWindow { Period = "5h", Requests = 1000 }, new UpstreamWindow { Period = "7d", Tokens = 100_000 }], totals), 9);
        Assert.Equal(0, UpstreamWindows.Headroom([new UpstreamWindow { Period = "1d", Requests = 800 }], totals));
    }
}
