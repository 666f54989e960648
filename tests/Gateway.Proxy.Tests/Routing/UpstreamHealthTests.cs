using Gateway.Proxy.Routing;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Routing;

public sealed class UpstreamHealthTests
{
    private static readonly DateTimeOffset Noon = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    private static long UnixMinute(DateTimeOffset t) => t.ToUnixTimeSeconds() / 60;

    [Fact]
    public void Shared_totals_and_unsynced_local_counts_add_up_without_counting_pushed_counts_twice()
    {
        var clock = new ManualTimeProvider(Noon.AddSeconds(10));
        var health = new UpstreamHealth("a", clock);
        health.CountRequest();
        health.CountRequest();
        health.CountTokens(100);

        var pending = health.TakePending();
        Assert.Equal(new PendingUsage(UnixMinute(Noon), 2, 100, 2, 100), pending);
        // A request sent while the sync is in flight is not in the totals the sync brings back.
        health.CountRequest();
        // 2 of ours + 5 from other replicas.
        health.ApplyShared(pending, sharedRequests: 7, sharedTokens: 400);

        Assert.False(health.UnderLimits(8, null));   // 7 shared + 1 not yet pushed
        Assert.True(health.UnderLimits(9, null));
        Assert.False(health.UnderLimits(null, 400));
        Assert.True(health.UnderLimits(null, 401));

        // The next sync pushes only what came after the last push.
        var next = health.TakePending();
        Assert.Equal((3L, 100L, 1L, 0L), (next.Requests, next.Tokens, next.RequestsDelta, next.TokensDelta));
        health.ApplyShared(next, sharedRequests: 9, sharedTokens: 400);
        Assert.False(health.UnderLimits(9, null));
        Assert.True(health.UnderLimits(10, null));
    }

    [Fact]
    public void Minute_window_rolls_over_on_the_utc_minute_boundary()
    {
        var clock = new ManualTimeProvider(Noon.AddSeconds(59.9));
        var health = new UpstreamHealth("a", clock);
        health.CountRequest();
        health.CountRequest();
        health.ApplyShared(health.TakePending(), sharedRequests: 10, sharedTokens: 0);
        Assert.False(health.UnderLimits(10, null));

        clock.Advance(TimeSpan.FromMilliseconds(99));   // 12:00:59.999, same minute
        Assert.False(health.UnderLimits(10, null));

        clock.Set(Noon.AddMinutes(1));                  // 12:01:00.000: a new window everywhere
        Assert.True(health.UnderLimits(1, null));
        var pending = health.TakePending();
        Assert.Equal(new PendingUsage(UnixMinute(Noon) + 1, 0, 0, 0, 0), pending);

        health.CountRequest();
        Assert.False(health.UnderLimits(1, null));
    }

    [Fact]
    public void Wall_clock_stepping_back_keeps_the_current_window()
    {
        var clock = new ManualTimeProvider(Noon.AddSeconds(70));
        var health = new UpstreamHealth("a", clock);
        health.CountRequest();
        clock.Set(Noon.AddSeconds(50));
        Assert.False(health.UnderLimits(1, null));
        Assert.Equal(UnixMinute(Noon) + 1, health.TakePending().Minute);
    }

    [Fact]
    public void Shared_totals_of_another_minute_are_ignored()
    {
        var clock = new ManualTimeProvider(Noon.AddSeconds(30));
        var health = new UpstreamHealth("a", clock);
        var stale = health.TakePending();
        clock.Advance(TimeSpan.FromMinutes(1));
        // A sync that started in the previous minute and answered after the boundary.
        health.ApplyShared(stale, sharedRequests: 50, sharedTokens: 0);
        Assert.True(health.UnderLimits(1, null));
    }
}
