using System.Collections.Concurrent;
using Gateway.Core.Enforcement;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.Testing;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>Two proxy replicas: two Enforcers, each on its own Redis connection, sharing one projection.</summary>
public abstract class ReplicaConcurrencyTests : IAsyncLifetime
{
    /// <summary>On the shared single Redis server.</summary>
    public sealed class Single : ReplicaConcurrencyTests;

    /// <summary>On a three-master Redis Cluster: every script touches one slot (DESIGN "Hot path v2").</summary>
    [Collection(EnforcementClusterCollection.Name)]
    public sealed class Cluster(EnforcementClusterFixture cluster) : ReplicaConcurrencyTests
    {
        protected override Task<EnforcementTestContext> CreateContextAsync() => cluster.CreateContextAsync();
    }

    protected virtual Task<EnforcementTestContext> CreateContextAsync() => CreateAsync();

    private const long InitialBalance = 5_000_000;
    private EnforcementTestContext _t = null!;
    private IRedisClient _secondConnection = null!;
    private Enforcer _replicaB = null!;

    public async Task InitializeAsync()
    {
        _t = await CreateContextAsync();
        _secondConnection = await _t.ConnectAnotherAsync();
        _replicaB = new Enforcer(_secondConnection, _t.Keys, _t.Clock);
        await _t.SetBalanceAsync("u1", InitialBalance);
    }

    public async Task DisposeAsync()
    {
        await _secondConnection.DisposeAsync();
        await _t.DisposeAsync();
    }

    private Enforcer Replica(int i) => i % 2 == 0 ? _t.Enforcer : _replicaB;

    [Fact]
    public async Task Parallel_admissions_on_two_replicas_never_reserve_more_than_the_balance()
    {
        var user = User(budget: new Budget { Amount = 100m, Period = BudgetPeriods.Daily, Timezone = "Europe/Berlin" });
        var key = Key(limits: new KeyLimits { SpendLimit = 100m });

        var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(i =>
            Task.Run(() => Replica(i).AdmitAsync(Request(key, user, reservedMicros: 100_000)))));

        var admitted = results.Where(r => r.Allowed).Select(r => r.Reservation!).ToList();
        Assert.Equal(50, admitted.Count); // 5.00 USD / 0.10 USD, exactly
        Assert.All(results.Where(r => !r.Allowed), r => Assert.Equal(RejectionReason.InsufficientBalance, r.Reason));
        Assert.Equal(0, await _t.GetLongAsync(_t.Keys.Balance("u1")));

        var random = new Random(42);
        var actuals = admitted.Select(_ => (long)random.Next(0, 100_001)).ToArray();
        var outcomes = await Task.WhenAll(admitted.Select((r, i) =>
            Task.Run(() => Replica(i).SettleAsync(Settlement(r, actuals[i], new TokenCounts(10, 0, 0, 10))))));

        Assert.All(outcomes, o => Assert.Equal(SettleOutcome.Settled, o));
        var spent = actuals.Sum();
        Assert.Equal(InitialBalance - spent, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        Assert.Equal(spent, await _t.GetLongAsync(admitted[0].BudgetKey));
        Assert.Equal(spent, await _t.HashLongAsync(_t.Keys.KeyLifetime("u1", "k1"), "spend"));
        Assert.Equal(50, (await _t.UsageEventsAsync()).Count);
    }

    [Fact]
    public async Task Admissions_interleaved_with_settlements_keep_spend_within_the_balance_exactly()
    {
        var user = User();
        var key = Key();
        var random = new Random(7);
        var reservations = Enumerable.Range(0, 200).Select(_ => (long)random.Next(50_000, 250_001)).ToArray();
        var actualFraction = Enumerable.Range(0, 200).Select(_ => random.NextDouble()).ToArray();
        var charged = new ConcurrentBag<long>();
        // balance = initial - reservations in flight - settled spend, so it never going below zero is the
        // "never overspend beyond what is in flight" invariant; sample it while the requests run.
        using var done = new CancellationTokenSource();
        var lowest = long.MaxValue;
        var sampler = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
                lowest = Math.Min(lowest, await _t.GetLongAsync(_t.Keys.Balance("u1")));
        });

        await Task.WhenAll(Enumerable.Range(0, 200).Select(i => Task.Run(async () =>
        {
            var enforcer = Replica(i);
            var result = await enforcer.AdmitAsync(Request(key, user, reservations[i]));
            if (!result.Allowed)
            {
                Assert.Equal(RejectionReason.InsufficientBalance, result.Reason);
                return;
            }
            var actual = (long)(reservations[i] * actualFraction[i]);
            Assert.Equal(SettleOutcome.Settled, await enforcer.SettleAsync(Settlement(result.Reservation!, actual, new TokenCounts(1, 0, 0, 1))));
            charged.Add(actual);
        })));
        await done.CancelAsync();
        await sampler;

        var spent = charged.Sum();
        Assert.True(spent <= InitialBalance);
        Assert.True(lowest >= 0, $"the balance went down to {lowest} micros");
        Assert.True(charged.Count >= 19, $"only {charged.Count} requests were admitted");
        var balance = await _t.GetLongAsync(_t.Keys.Balance("u1"));
        Assert.Equal(InitialBalance - spent, balance);
        Assert.True(balance >= 0);
        Assert.Equal(charged.Count, (await _t.UsageEventsAsync()).Count);
    }
}
