using System.Collections.Concurrent;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.Testing;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// A replica's quota leases end to end against a real Redis (issue #11, items 1–3): requests admitted locally, their
/// records written in group commits; two replicas (two books, each with its own Enforcer) under concurrency never
/// overspend a balance or exceed a window in total; idle leases go back; a lease that ends with a request in flight hands
/// it over, and it settles exactly. Each test ends with the money adding up: the balance is the initial balance minus
/// exactly what the usage events charged.
/// </summary>
public abstract class LeaseBookTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : LeaseBookTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : LeaseBookTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private const long Balance = 1_000_000_000;
    private EnforcementTestContext _t = null!;
    private readonly List<LeaseBook> _books = [];

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        await _t.SetBalanceAsync("u1", Balance);
    }

    public async Task DisposeAsync()
    {
        foreach (var b in _books) await b.DisposeAsync();
        await _t.DisposeAsync();
    }

    private LeaseBook Book(LeaseOptions? options = null)
    {
        var book = new LeaseBook(new Enforcer(_t.Redis, _t.Keys, _t.Clock), options ?? new LeaseOptions { Enabled = true }, _t.Clock);
        _books.Add(book);
        return book;
    }

    private static UsageEvent UsageOf(AdmissionRequest r, long micros) => new()
    {
        RequestId = r.RequestId,
        KeyId = r.Key.KeyId,
        KeyVersion = r.Key.Version,
        UserId = r.User.UserId,
        Upstream = "default/mock",
        Model = r.Model,
        Route = r.Route,
        Tokens = new TokenCounts(r.EstimatedInputTokens, 0, 0, r.MaxOutputTokens / 2),
        Cost = Money.FromMicros(micros),
        PriceVersion = r.PriceVersion,
        StartedAt = DateTimeOffset.UnixEpoch,
        Status = 200,
    };

    /// <summary>One request through a replica as the proxy does it: a lease if the book has one, else the exact scripts;
    /// settled at <paramref name="actual"/>. Returns whether it was admitted.</summary>
    private static async Task<bool> SendAsync(LeaseBook book, Enforcer exact, KeyProjection key, UserProjection user, long reserved, long actual)
    {
        var request = Request(key, user, reservedMicros: reserved);
        if (await book.TryAdmitAsync(request) is { } ticket)
        {
            await book.SettleAsync(ticket, UsageOf(request, actual), actual);
            return true;
        }
        var admission = await exact.AdmitAsync(request);
        if (!admission.Allowed) return false;
        await exact.SettleAsync(new Settlement { Reservation = admission.Reservation!, Usage = UsageOf(request, actual), ActualCostMicros = actual });
        return true;
    }

    private async Task AssertMoneyAddsUpAsync(string userId = "u1", long initial = Balance)
    {
        var events = await _t.UsageEventsAsync();
        var charged = events.Where(e => e.UserId == userId).Sum(e => Money.ToMicrosCeiling(e.Cost));
        Assert.Equal(initial - charged, await _t.GetLongAsync(_t.Keys.Balance(userId)));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
    }

    [Fact]
    public async Task Requests_are_admitted_against_a_lease_and_many_leave_in_one_flush()
    {
        var book = Book();
        var key = Key();
        var user = User();
        var requests = Enumerable.Range(0, 40).Select(_ => Request(key, user, reservedMicros: 2_000)).ToList();
        var tickets = await Task.WhenAll(requests.Select(r => book.TryAdmitAsync(r).AsTask()));
        Assert.All(tickets, Assert.NotNull);
        // Leases are taken in slices (at least 8 requests each), not per request.
        Assert.InRange(book.Granted, 1, 5);
        Assert.Equal(40, tickets.Select(t => t!.LeaseId).GroupBy(id => id).Sum(g => g.Count()));

        for (var i = 0; i < tickets.Length; i++) await book.SettleAsync(tickets[i]!, UsageOf(requests[i], 1_500), 1_500);
        await book.FlushAsync();
        var events = await _t.UsageEventsAsync();
        Assert.Equal(40, events.Count);
        Assert.Equal(requests.Select(r => r.RequestId).Order(), events.Select(e => e.RequestId).Order());

        await book.DisposeAsync();
        Assert.Equal(book.Granted, book.Returned);
        await AssertMoneyAddsUpAsync();
        Assert.Equal(40 * 1_500, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(40, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "rmc"));
    }

    public static TheoryData<string> MoneyLimits => ["balance", "budget", "spend limit"];

    [Theory]
    [MemberData(nameof(MoneyLimits))]
    public async Task Two_replicas_with_leases_never_overspend_a_balance_budget_or_spend_limit_under_concurrency(string limit)
    {
        // $2 (the balance, the period budget or the key's spend limit) and requests that cost exactly what they reserve
        // (10,000 µ$): at most 200 can be served.
        if (limit == "balance") await _t.SetBalanceAsync("u1", 2_000_000);
        var books = new[] { Book(), Book() };
        var exact = new[] { new Enforcer(_t.Redis, _t.Keys, _t.Clock), new Enforcer(_t.Redis, _t.Keys, _t.Clock) };
        var key = Key(limits: limit == "spend limit" ? new KeyLimits { SpendLimit = 2m } : null);
        var user = User(budget: limit == "budget" ? new Budget { Amount = 2m, Period = "monthly" } : null);
        var admitted = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
                if (await SendAsync(books[worker % 2], exact[worker % 2], key, user, 10_000, 10_000)) Interlocked.Increment(ref admitted);
        })));
        Assert.True(books.Sum(b => b.Granted) > 0, "leases were used");
        foreach (var b in books) await b.DisposeAsync();

        Assert.InRange(admitted, 150, 200);
        var initial = limit == "balance" ? 2_000_000 : Balance;
        Assert.True(await _t.GetLongAsync(_t.Keys.Balance("u1")) >= initial - 2_000_000);
        await AssertMoneyAddsUpAsync(initial: initial);
        Assert.Equal(admitted, (await _t.UsageEventsAsync()).Count);
        if (limit == "spend limit") Assert.Equal(admitted * 10_000L, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
    }

    [Fact]
    public async Task Two_replicas_with_leases_never_exceed_a_window_in_total()
    {
        var books = new[] { Book(), Book() };
        var exact = new[] { new Enforcer(_t.Redis, _t.Keys, _t.Clock), new Enforcer(_t.Redis, _t.Keys, _t.Clock) };
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 100 });
        var user = User();
        var admitted = 0;
        await Task.WhenAll(Enumerable.Range(0, 6).Select(worker => Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
                if (await SendAsync(books[worker % 2], exact[worker % 2], key, user, 1_000, 800)) Interlocked.Increment(ref admitted);
        })));
        Assert.True(books.Sum(b => b.Granted) > 0, "leases were used");
        Assert.InRange(admitted, 1, 100);
        foreach (var b in books) await b.DisposeAsync();

        // What the leases held back is in the window again only as far as it was used.
        Assert.Equal(admitted, await _t.HashLongAsync(_t.Keys.KeyRateCounters("u1", "k1"), "rmc"));
        await AssertMoneyAddsUpAsync();
    }

    [Fact]
    public async Task An_idle_lease_goes_back_by_itself()
    {
        var book = Book(new LeaseOptions { Enabled = true, IdleReturn = TimeSpan.FromSeconds(5) });
        var request = Request(Key(), User(), reservedMicros: 3_000);
        var ticket = (await book.TryAdmitAsync(request))!;
        await book.SettleAsync(ticket, UsageOf(request, 2_500), 2_500);
        Assert.Equal(1, await _t.CountAllShardsAsync(_t.Keys.Leases));

        _t.Clock.Advance(TimeSpan.FromSeconds(5));
        await Eventually.TrueAsync(async () => await _t.CountAllShardsAsync(_t.Keys.Leases) == 0 && book.Held == 0, "the idle lease to be returned");
        await AssertMoneyAddsUpAsync();
        Assert.Equal(Balance - 2_500, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_lease_that_ends_with_a_request_in_flight_hands_it_over_and_it_settles_exactly()
    {
        var book = Book();
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 1_000 });
        var request = Request(key, User(), reservedMicros: 4_000);
        var ticket = (await book.TryAdmitAsync(request))!;

        // The minute ends (a minute limit applies): the lease is returned while the request is still in flight.
        _t.Clock.Advance(TimeSpan.FromSeconds(60));
        await Eventually.TrueAsync(async () => await _t.CountAllShardsAsync(_t.Keys.Leases) == 0, "the expired lease to be returned");
        Assert.Equal(4_000, await _t.HashLongAsync(_t.Keys.Reservation(request.User.UserId, request.RequestId), "reserved"));

        await book.SettleAsync(ticket, UsageOf(request, 3_100), 3_100);
        Assert.False(await _t.ExistsAsync(_t.Keys.Reservation(request.User.UserId, request.RequestId)));
        await AssertMoneyAddsUpAsync();
        Assert.Equal(Balance - 3_100, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task An_invalidated_pair_stops_using_its_lease_at_once_and_the_lease_goes_back()
    {
        var book = Book();
        var key = Key();
        var user = User();
        var first = Request(key, user);
        var ticket = (await book.TryAdmitAsync(first))!;
        await book.SettleAsync(ticket, UsageOf(first, 900), 900);

        book.Invalidate(keyId: "k1");
        var second = Request(key, user);
        var next = (await book.TryAdmitAsync(second))!;
        Assert.NotEqual(ticket.LeaseId, next.LeaseId);
        await Eventually.TrueAsync(async () => await _t.CountAllShardsAsync(_t.Keys.Leases) == 1, "the invalidated lease to be returned");
        await book.SettleAsync(next, UsageOf(second, 700), 700);
        await book.DisposeAsync();
        await AssertMoneyAddsUpAsync();
    }

    [Fact]
    public async Task A_lease_holds_concurrency_slots_that_exact_admissions_count_and_frees_them_when_returned()
    {
        var book = Book();
        var exact = new Enforcer(_t.Redis, _t.Keys, _t.Clock);
        var key = Key(limits: new KeyLimits { MaxConcurrent = 40 });
        var user = User();
        var inflight = _t.Keys.KeyInflight("u1", "k1");

        // Eight requests in flight fill the first lease's eight slots.
        var held = new List<(LeaseTicket Ticket, AdmissionRequest Request)>();
        for (var i = 0; i < 8; i++)
        {
            var r = Request(key, user);
            held.Add(((await book.TryAdmitAsync(r))!, r));
        }
        Assert.Equal(1, book.Granted);
        Assert.Equal(8, await _t.CountAsync(inflight));

        // A ninth would need a lease of 16 slots, which needs 4 × 16 free of 40: refused, so it is admitted exactly.
        var ninth = Request(key, user);
        Assert.Null(await book.TryAdmitAsync(ninth));
        var reservations = new List<Reservation>();
        for (var i = 0; i < 32; i++)
        {
            var a = await exact.AdmitAsync(Request(key, user));
            Assert.True(a.Allowed, $"exact request {i + 1}");
            reservations.Add(a.Reservation!);
        }
        // 8 leased slots + 32 exact = 40: the limit holds in total.
        Assert.Equal(RejectionReason.KeyConcurrency, (await exact.AdmitAsync(Request(key, user))).Reason);

        foreach (var (ticket, r) in held) await book.SettleAsync(ticket, UsageOf(r, 500), 500);
        foreach (var r in reservations) await exact.ReleaseAsync(r);
        await book.DisposeAsync();
        Assert.Equal(0, await _t.CountAsync(inflight));
        await AssertMoneyAddsUpAsync();
    }

    [Fact]
    public async Task A_pair_near_its_limits_is_admitted_exactly()
    {
        var book = Book();
        await _t.SetBalanceAsync("u2", 50_000);
        // 8 requests × 10,000 µ$ × factor 4 is more than the balance: no lease, the exact scripts decide.
        Assert.Null(await book.TryAdmitAsync(Request(Key("k2", "u2"), User("u2"), reservedMicros: 10_000)));
        // A concurrency limit of 5 cannot spare 4 × 8 slots either.
        Assert.Null(await book.TryAdmitAsync(Request(Key(limits: new KeyLimits { MaxConcurrent = 5 }), User())));
        Assert.Equal(0, book.Granted);
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
    }
    [Fact]
    public async Task A_lease_Redis_lost_admits_nothing_more_and_the_pair_is_leased_again_once_rebuilt()
    {
        var book = Book();
        var key = Key();
        var user = User();
        var inFlight = Request(key, user, reservedMicros: 2_000);
        var lost = (await book.TryAdmitAsync(inFlight))!;
        Assert.True(await _t.ExistsAsync(_t.Keys.Lease("u1", lost.LeaseId)));

        // Redis loses its data (FLUSHALL; here only this test's keys, the shared Redis is never flushed). The book still
        // has room in the lease locally, but an admission under it would return with no in-flight record in Redis: if
        // the replica died, nothing would charge the request. It is refused instead, as while the projection is rebuilt.
        await LoseRedisDataAsync();
        var during = Request(key, user, reservedMicros: 2_000);
        LeaseTicket? admitted = null;
        var error = await Record.ExceptionAsync(async () => admitted = await book.TryAdmitAsync(during));
        Assert.True(admitted is null, $"admitted under lease {admitted?.LeaseId}, which Redis lost");
        Assert.IsType<ProjectionMissingException>(error);
        await Assert.ThrowsAsync<ProjectionMissingException>(() => book.TryAdmitAsync(Request(key, user, reservedMicros: 2_000)).AsTask());

        // Rebuilt (the balance is back): the pair gets a new lease, and what it admits is recorded in Redis again.
        await _t.SetBalanceAsync("u1", Balance);
        var after = Request(key, user, reservedMicros: 2_000);
        var ticket = (await book.TryAdmitAsync(after))!;
        Assert.NotEqual(lost.LeaseId, ticket.LeaseId);
        Assert.Equal(1, (await _t.Redis.ExecuteAsync("HEXISTS", [_t.Keys.LeaseInflight("u1", ticket.LeaseId), after.RequestId])).AsInt64());

        // The request in flight across the loss settles (its usage goes to the outbox as lost, which charges it again);
        // the lost lease is written nowhere and the new one goes back whole but for what it used.
        await book.SettleAsync(lost, UsageOf(inFlight, 1_500), 1_500);
        await book.SettleAsync(ticket, UsageOf(after, 1_500), 1_500);
        await book.DisposeAsync();
        Assert.False(await _t.ExistsAsync(_t.Keys.Lease("u1", lost.LeaseId)));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
        Assert.Equal(Balance - 1_500, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_flush_whose_reply_is_lost_after_Redis_ran_it_refuses_its_admissions_without_charging_them_and_writes_nothing_twice()
    {
        var redis = new LoseNextFlushReply(_t.Redis);
        var book = new LeaseBook(new Enforcer(redis, _t.Keys, _t.Clock), new LeaseOptions { Enabled = true }, _t.Clock);
        _books.Add(book);
        var key = Key();
        var user = User();
        var settled = Request(key, user, reservedMicros: 2_000);
        var ticket = (await book.TryAdmitAsync(settled))!;
        await book.SettleAsync(ticket, UsageOf(settled, 1_500), 1_500);

        // The next flush carries the settlement and a new admission; Redis runs it, and the reply is lost (a timeout).
        redis.Armed = true;
        var refused = Request(key, user, reservedMicros: 2_000);
        await Assert.ThrowsAsync<RedisConnectionException>(() => book.TryAdmitAsync(refused).AsTask());
        Assert.False(redis.Armed);

        // The next flush sends the settlement again and releases the refused admission: one usage event, and once the lease
        // is returned the balance is down by exactly the settled request's cost (the refused one is charged nothing).
        await book.FlushAsync();
        await book.DisposeAsync();
        Assert.Equal([settled.RequestId], (await _t.UsageEventsAsync()).Select(e => e.RequestId));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Leases));
        Assert.Equal(0, await _t.CountAllShardsAsync(_t.Keys.Reservations));
        Assert.Equal(Balance - 1_500, await _t.GetLongAsync(_t.Keys.Balance("u1")));
    }

    /// <summary>Runs every command; when armed, the next lease flush runs and then fails as if its reply had been lost.</summary>
    private sealed class LoseNextFlushReply(IRedisClient inner) : IRedisClient
    {
        public bool Armed { get; set; }
        public bool IsConnected => inner.IsConnected;
        public event Action? Reconnected { add => inner.Reconnected += value; remove => inner.Reconnected -= value; }
        public Task<RespValue> ExecuteAsync(string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default) =>
            inner.ExecuteAsync(command, args, cancellationToken);
        public async Task<RespValue> EvalAsync(LuaScript script, IReadOnlyList<RedisArg> keys, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default)
        {
            var reply = await inner.EvalAsync(script, keys, args, cancellationToken);
            if (!ReferenceEquals(script, LeaseScripts.Flush) || !Armed) return reply;
            Armed = false;
            throw new RedisConnectionException("The reply was lost (test).");
        }
        public Task<IAsyncDisposable> SubscribeAsync(string channel, Action<string, string> onMessage, CancellationToken cancellationToken = default) =>
            inner.SubscribeAsync(channel, onMessage, cancellationToken);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    [Fact]
    public async Task A_leased_admission_reports_the_rate_limits_an_exact_admission_reports_at_the_same_counts()
    {
        // Two pairs set up identically (limits and earlier traffic, some of it in the previous minute so the sliding
        // minute's weighting and the resets are compared too); then one admits under a lease, the other exactly.
        await _t.SetBalanceAsync("u2", Balance);
        var keyLimits = new KeyLimits { RequestsPerMinute = 1_000, TokensPerMinute = 1_000_000 };
        var userLimits = new RateLimits { RequestsPerDay = 10_000, TokensPerDay = 50_000_000 };
        var leasedKey = Key(limits: keyLimits);
        var leasedUser = User(limits: userLimits);
        var exactKey = Key("k2", "u2", limits: keyLimits);
        var exactUser = User("u2", limits: userLimits);
        var exact = new Enforcer(_t.Redis, _t.Keys, _t.Clock);
        foreach (var (key, user) in new[] { (leasedKey, leasedUser), (exactKey, exactUser) })
            for (var i = 0; i < 6; i++) Assert.True((await exact.AdmitAsync(Request(key, user))).Allowed);
        _t.Clock.Advance(TimeSpan.FromSeconds(60));
        foreach (var (key, user) in new[] { (leasedKey, leasedUser), (exactKey, exactUser) })
            for (var i = 0; i < 2; i++) Assert.True((await exact.AdmitAsync(Request(key, user))).Allowed);
        _t.Clock.Advance(TimeSpan.FromSeconds(10));

        var book = Book();
        RateLimitStatus? previous = null;
        for (var i = 0; i < 3; i++)
        {
            var ticket = await book.TryAdmitAsync(Request(leasedKey, leasedUser));
            Assert.NotNull(ticket);
            var admission = await exact.AdmitAsync(Request(exactKey, exactUser));
            Assert.True(admission.Allowed);
            Assert.NotNull(ticket.Requests);
            Assert.NotNull(ticket.Tokens);
            Assert.Equal(admission.Requests, ticket.Requests);
            Assert.Equal(admission.Tokens, ticket.Tokens);
            if (previous is { } p) Assert.Equal(p.Remaining - 1, ticket.Requests.Value.Remaining);
            previous = ticket.Requests;
        }
        Assert.Equal(1, book.Granted);
    }

    [Fact]
    public async Task Remaining_goes_down_with_each_leased_request_and_never_exceeds_what_the_slice_leaves()
    {
        // With a headroom factor of 1 a slice of 8 requests (2,400 tokens) may take all that is left of the windows
        // (10 requests, 3,000 tokens a minute, 2 of them used): what remains is exactly what the lease has not used.
        var book = Book(new LeaseOptions { Enabled = true, HeadroomFactor = 1, MinRequests = 8, MaxRequests = 8 });
        var exact = new Enforcer(_t.Redis, _t.Keys, _t.Clock);
        var key = Key(limits: new KeyLimits { RequestsPerMinute = 10, TokensPerMinute = 3_000 });
        var user = User();
        for (var i = 0; i < 2; i++) Assert.True((await exact.AdmitAsync(Request(key, user))).Allowed);

        for (var i = 1; i <= 8; i++)
        {
            var ticket = await book.TryAdmitAsync(Request(key, user));
            Assert.NotNull(ticket);
            Assert.Equal(new RateLimitStatus(10, 8 - i, TimeSpan.FromSeconds(119)), ticket.Requests);
            Assert.Equal(new RateLimitStatus(3_000, 300 * (8 - i), TimeSpan.FromSeconds(119)), ticket.Tokens);
        }
        Assert.Equal(1, book.Granted);

        // The slice is used up and the window has nothing beyond it: no lease, and the exact scripts agree.
        Assert.Null(await book.TryAdmitAsync(Request(key, user)));
        var refused = await exact.AdmitAsync(Request(key, user));
        Assert.Equal(RejectionReason.KeyRpm, refused.Reason);
        Assert.Equal(0, refused.Requests!.Value.Remaining);
    }

    [Fact]
    public async Task A_settlement_on_a_quiet_replica_reaches_Redis_after_the_settle_linger_not_the_sweep_interval()
    {
        // Nothing else happens on this replica: no admission flush for the usage event to ride with, and due leases are
        // looked for only every 10 seconds. It leaves after the 5 ms linger.
        var book = Book(new LeaseOptions { Enabled = true, SweepInterval = TimeSpan.FromSeconds(10), SettleLinger = TimeSpan.FromMilliseconds(5), IdleReturn = TimeSpan.FromMinutes(5) });
        var request = Request(Key(), User(), reservedMicros: 2_000);
        var ticket = (await book.TryAdmitAsync(request))!;
        await book.SettleAsync(ticket, UsageOf(request, 1_500), 1_500);
        await Eventually.TrueAsync(async () => (await _t.UsageEventsAsync()).Count == 1, "the usage event in Redis", TimeSpan.FromSeconds(3));
        Assert.Equal(request.RequestId, Assert.Single(await _t.UsageEventsAsync()).RequestId);
    }

    /// <summary>Deletes every key of this test's prefix, as FLUSHALL would.</summary>
    private Task LoseRedisDataAsync() => _t.DeleteAllKeysAsync();
}
