using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Proxy.Routing;

namespace Gateway.Proxy.Tests.Routing;

public sealed class UpstreamSelectorTests
{
    private static UpstreamTarget Target(string name, int priority = 0, int weight = 1, Dictionary<string, string>? labels = null, int? maxConcurrent = null) => new()
    {
        Account = new UpstreamProjection
        {
            Name = name, Provider = Providers.OpenAI, BaseUrl = "http://127.0.0.1:1/v1", Priority = priority, Weight = weight,
            Labels = labels ?? [], Limits = maxConcurrent is null ? null : new UpstreamLimits { MaxConcurrent = maxConcurrent },
        },
        Model = new UpstreamModel { Name = "m" },
        Health = new UpstreamHealth(name),
        UpstreamModelName = "m",
        BaseUrl = "http://127.0.0.1:1/v1",
        BaseQuery = "",
    };

    [Fact]
    public void Lowest_priority_tier_is_chosen_first_then_the_next_after_it_was_tried()
    {
        UpstreamTarget[] targets = [Target("b", priority: 1), Target("a", priority: 0)];
        var first = UpstreamSelector.Pick(targets, null, 0, out _);
        Assert.Equal(1, first);
        Assert.Equal(0, UpstreamSelector.Pick(targets, null, 1UL << first, out _));
        Assert.Equal(-1, UpstreamSelector.Pick(targets, null, 0b11, out _));
    }

    [Fact]
    public void Weighted_choice_follows_the_weights()
    {
        UpstreamTarget[] targets = [Target("light", weight: 1), Target("heavy", weight: 20)];
        var heavy = 0;
        for (var i = 0; i < 2000; i++) if (UpstreamSelector.Pick(targets, null, 0, out _) == 1) heavy++;
        // Power of two choices over weights 1:20 picks "heavy" unless both draws are "light".
        Assert.InRange(heavy, 1800, 2000);
    }

    [Fact]
    public void Fewer_in_flight_wins_between_equal_weights()
    {
        UpstreamTarget[] targets = [Target("busy"), Target("idle")];
        for (var i = 0; i < 10; i++) targets[0].Health.Enter();
        var idle = 0;
        for (var i = 0; i < 1000; i++) if (UpstreamSelector.Pick(targets, null, 0, out _) == 1) idle++;
        // "busy" wins only when both draws land on it (about a quarter).
        Assert.InRange(idle, 650, 850);
    }

    [Fact]
    public void Accounts_at_their_concurrency_limit_or_outside_the_selector_are_skipped()
    {
        UpstreamTarget[] targets = [Target("full", maxConcurrent: 1), Target("other-pool", labels: new() { ["pool"] = "b" }), Target("ok", priority: 9, labels: new() { ["pool"] = "a" })];
        targets[0].Health.Enter();
        var selector = new LabelSelector { MatchExpressions = [new LabelSelectorRequirement { Key = "pool", Operator = "In", Values = ["a"] }] };
        Assert.Equal(2, UpstreamSelector.Pick(targets, selector, 0, out _));
    }

    [Fact]
    public void Cooldown_excludes_an_account_then_lets_exactly_one_probe_through()
    {
        var health = new UpstreamHealth("x");
        Assert.False(health.RecordFailure(false, threshold: 2, cooldownSeconds: 60));
        Assert.True(health.RecordFailure(false, threshold: 2, cooldownSeconds: 60));
        UpstreamTarget[] targets = [Target("x")];
        var t = new UpstreamTarget { Account = targets[0].Account, Model = targets[0].Model, Health = health, UpstreamModelName = "m", BaseUrl = "u", BaseQuery = "" };
        Assert.Equal(-1, UpstreamSelector.Pick([t], null, 0, out _));

        // A cooldown that has passed: half-open, one probe only.
        health.RecordFailure(true, threshold: 2, cooldownSeconds: 0);
        Assert.Equal(0, UpstreamSelector.Pick([t], null, 0, out var probe));
        Assert.True(probe);
        Assert.Equal(-1, UpstreamSelector.Pick([t], null, 0, out _));
        health.RecordSuccess(wasProbe: true);
        Assert.Equal(0, UpstreamSelector.Pick([t], null, 0, out probe));
        Assert.False(probe);
        Assert.Equal(0, health.CooldownGauge);
    }

    [Theory]
    [InlineData("Exists", null, true)]
    [InlineData("DoesNotExist", null, false)]
    [InlineData("NotIn", "a", false)]
    [InlineData("NotIn", "b", true)]
    public void Label_selector_expressions(string op, string? value, bool expected)
    {
        var selector = new LabelSelector { MatchExpressions = [new LabelSelectorRequirement { Key = "pool", Operator = op, Values = value is null ? null : [value] }] };
        Assert.Equal(expected, UpstreamSelector.Matches(selector, new() { ["pool"] = "a" }));
    }

    [Fact]
    public void Account_requests_and_tokens_per_minute_make_it_ineligible_for_the_rest_of_the_minute()
    {
        var t = Target("limited");
        var limited = new UpstreamTarget
        {
            Account = t.Account with { Limits = new UpstreamLimits { RequestsPerMinute = 2, TokensPerMinute = 1000 } },
            Model = t.Model, Health = t.Health, UpstreamModelName = "m", BaseUrl = "u", BaseQuery = "",
        };
        t.Health.CountRequest();
        Assert.Equal(0, UpstreamSelector.Pick([limited], null, 0, out _));
        t.Health.CountTokens(1000);
        Assert.Equal(-1, UpstreamSelector.Pick([limited], null, 0, out _));
        Assert.True(t.Health.UnderLimits(5, null));
        t.Health.CountRequest();
        Assert.False(t.Health.UnderLimits(2, null));
    }

    private static UserProjection User(LabelSelector? dedicated, bool fallback = true, LabelSelector? shared = null) =>
        new() { UserId = "u", Name = "default/u", DedicatedSelector = dedicated, FallbackToShared = fallback, UpstreamSelector = shared };

    private static LabelSelector Pool(string pool) => new() { MatchLabels = new() { ["pool"] = pool } };

    [Fact]
    public void Dedicated_accounts_are_tried_first_whatever_their_priority_then_the_shared_pool()
    {
        // The shared account has the better priority; the dedicated one still goes first.
        UpstreamTarget[] targets = [Target("shared", priority: 0, labels: new() { ["pool"] = "shared" }), Target("mine", priority: 5, labels: new() { ["pool"] = "alice" })];
        var user = User(Pool("alice"));
        for (var i = 0; i < 50; i++) Assert.Equal(1, UpstreamSelector.PickFor(targets, user, 0, out _));
        // Once the dedicated account was tried (or cannot take it), the shared pool is next.
        Assert.Equal(0, UpstreamSelector.PickFor(targets, user, 1UL << 1, out _));
        Assert.True(UpstreamSelector.HasCandidateFor(targets, user, 1UL << 1));
        targets[1].Health.CoolDownFor(TimeSpan.FromMinutes(1));
        Assert.Equal(0, UpstreamSelector.PickFor(targets, user, 0, out _));
        // The shared pool is still narrowed by upstreamSelector.
        Assert.Equal(-1, UpstreamSelector.PickFor(targets, User(Pool("alice"), shared: Pool("other")), 0, out _));
    }

    [Fact]
    public void Without_fallback_to_shared_only_dedicated_accounts_serve_the_user()
    {
        UpstreamTarget[] targets = [Target("shared", labels: new() { ["pool"] = "shared" }), Target("mine", labels: new() { ["pool"] = "alice" })];
        var user = User(Pool("alice"), fallback: false);
        Assert.Equal(1, UpstreamSelector.PickFor(targets, user, 0, out _));
        Assert.Equal(-1, UpstreamSelector.PickFor(targets, user, 1UL << 1, out _));
        Assert.False(UpstreamSelector.HasCandidateFor(targets, user, 1UL << 1));
        Assert.False(UpstreamSelector.MayUse(user, targets[0].Account.Labels));
        Assert.True(UpstreamSelector.MayUse(User(Pool("alice")), targets[0].Account.Labels));
        // A user without a dedicated selector uses the shared pool as before.
        Assert.NotEqual(-1, UpstreamSelector.PickFor(targets, User(null, fallback: false), 0, out _));
    }

    private static UpstreamTarget Windowed(string name, long used, long limit = 100_000, int priority = 0, int weight = 1, DateTimeOffset? tokenExpiresAt = null)
    {
        var t = Target(name, priority, weight);
        var target = new UpstreamTarget
        {
            Account = t.Account with { Windows = [new UpstreamWindow { Period = "5h", Requests = limit }], TokenExpiresAt = tokenExpiresAt },
            Model = t.Model, Health = t.Health, UpstreamModelName = "m", BaseUrl = "u", BaseQuery = "",
        };
        var totals = WindowTotals.Zero;
        totals.Requests[UpstreamWindows.IndexOf("5h")] = used;
        t.Health.ApplyWindows(totals);
        return target;
    }

    [Fact]
    public void Requests_spread_over_a_tier_in_proportion_to_each_accounts_headroom()
    {
        // 80 %, 40 % and 10 % of the 5h window left: shares 8 : 4 : 1 (sequential picks, nothing in flight, so the
        // first draw of each pair wins). An exhausted account gets nothing; none is drained while others have room.
        UpstreamTarget[] targets = [Windowed("a", used: 20_000), Windowed("b", used: 60_000), Windowed("c", used: 90_000), Windowed("full", used: 100_000)];
        var counts = new int[targets.Length];
        const int n = 13_000;
        for (var i = 0; i < n; i++) counts[UpstreamSelector.Pick(targets, null, 0, out _)]++;
        Assert.Equal(0, counts[3]);
        Assert.InRange(counts[0], 7_600, 8_400);
        Assert.InRange(counts[1], 3_600, 4_400);
        Assert.InRange(counts[2], 800, 1_200);
    }

    [Fact]
    public void Weight_scales_the_headroom_share_and_accounts_without_windows_count_as_full()
    {
        UpstreamTarget[] targets = [Windowed("half-heavy", used: 50_000, weight: 2), Target("unlimited")];
        var heavy = 0;
        for (var i = 0; i < 4_000; i++) if (UpstreamSelector.Pick(targets, null, 0, out _) == 0) heavy++;
        // 2 × 0.5 against 1 × 1: an even split.
        Assert.InRange(heavy, 1_750, 2_250);
    }

    [Fact]
    public void Local_requests_since_the_last_sync_count_against_the_window()
    {
        var t = Windowed("a", used: 8, limit: 10);
        Assert.Equal(0, UpstreamSelector.Pick([t], null, 0, out _));
        t.Health.CountRequest();
        t.Health.CountRequest();
        Assert.Equal(-1, UpstreamSelector.Pick([t], null, 0, out _));
        Assert.False(UpstreamSelector.HasCandidate([t], null, 0));
    }

    [Fact]
    public void Accounts_refreshing_or_with_a_token_about_to_expire_are_the_last_resort()
    {
        var refreshing = Windowed("refreshing", used: 0, priority: 0);
        refreshing.Health.SetRefreshing(true);
        var expiring = Windowed("expiring", used: 0, priority: 0, tokenExpiresAt: DateTimeOffset.UtcNow.AddSeconds(20));
        var fresh = Windowed("fresh", used: 0, priority: 5, tokenExpiresAt: DateTimeOffset.UtcNow.AddHours(1));
        UpstreamTarget[] targets = [refreshing, expiring, fresh];
        // A worse tier is preferred to them...
        for (var i = 0; i < 200; i++) Assert.Equal(2, UpstreamSelector.Pick(targets, null, 0, out _));
        // ...but with nothing else left they still serve, rather than the request failing.
        var picked = new HashSet<int>();
        for (var i = 0; i < 200; i++) picked.Add(UpstreamSelector.Pick(targets, null, 1UL << 2, out _));
        Assert.Equal([0, 1], picked.Order());
        Assert.True(UpstreamSelector.HasCandidate(targets, null, 1UL << 2));
        // Once the refresh is over, the account is an ordinary candidate again.
        refreshing.Health.SetRefreshing(false);
        Assert.Equal(0, UpstreamSelector.Pick(targets, null, 1UL << 2 | 1UL << 1, out _));
        var counts = new int[3];
        for (var i = 0; i < 200; i++) counts[UpstreamSelector.Pick(targets, null, 0, out _)]++;
        Assert.Equal(200, counts[0]);
    }

    [Fact]
    public void A_short_refresh_before_shortens_what_counts_as_about_to_expire()
    {
        // Tokens living seconds, refreshed 4 s ahead: about to expire means within 2 s (half of refreshBefore), not 60 s.
        UpstreamTarget Short(string name, double expiresInSeconds, int priority)
        {
            var t = Windowed(name, used: 0, priority: priority, tokenExpiresAt: DateTimeOffset.UtcNow.AddSeconds(expiresInSeconds));
            return new UpstreamTarget
            {
                Account = t.Account with { RefreshBeforeSeconds = 4 }, Model = t.Model, Health = t.Health, UpstreamModelName = "m", BaseUrl = "u", BaseQuery = "",
            };
        }
        UpstreamTarget[] fine = [Short("oauth", expiresInSeconds: 30, priority: 0), Target("fallback", priority: 1)];
        Assert.Equal(0, UpstreamSelector.Pick(fine, null, 0, out _));
        UpstreamTarget[] late = [Short("oauth", expiresInSeconds: 1, priority: 0), Target("fallback", priority: 1)];
        Assert.Equal(1, UpstreamSelector.Pick(late, null, 0, out _));
    }
}
