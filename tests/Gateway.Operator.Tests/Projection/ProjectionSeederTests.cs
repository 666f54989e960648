using Gateway.Core.Enforcement;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Tests.Projection;

/// <summary>
/// Issue #12 (Redis flushed): when the projection is gone, the next pass puts the money back from PostgreSQL before
/// anything else — each balance from the ledger, each key's lifetime tokens and spend and each budget's spend in its
/// period from usage_log — and marks the epoch with the Redis time the rebuild began. Values Redis still has are kept.
/// </summary>
public sealed class ProjectionSeederTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private async Task<(Guid User, Guid Key)> DemoAsync()
    {
        await using var db = _f.Db();
        return ((await db.Users.SingleAsync()).Id, (await db.ApiKeys.SingleAsync()).Id);
    }

    private async Task DeleteEveryKeyAsync()
    {
        var cursor = "0";
        do
        {
            var page = await _f.Redis.ExecuteAsync("SCAN", [cursor, "MATCH", _f.Keys.Prefix + "*", "COUNT", 1000]);
            cursor = page.Items[0].AsString()!;
            foreach (var k in page.Items[1].Items) await _f.Redis.ExecuteAsync("DEL", [k.AsString()!]);
        }
        while (cursor != "0");
    }

    [Fact]
    public async Task A_lost_projection_gets_balances_key_lifetimes_and_budgets_back_from_PostgreSQL()
    {
        var (user, key) = await DemoAsync();
        var now = DateTimeOffset.UtcNow;
        UsageEvent Use(string id, decimal cost, long output) => new()
        {
            RequestId = id, KeyId = key.ToString(), KeyVersion = 1, UserId = user.ToString(), Upstream = "default/mock",
            Model = "gpt-4o-mini", Route = "/v1/chat/completions", Tokens = new TokenCounts(100, 20, 0, output), Cost = cost,
            PriceVersion = "test@1", StartedAt = now, DurationMs = 10, Status = 200,
        };
        Assert.Equal(3, await UsageLedgerBatch.WriteAsync(_f.DataSource, [Use("s-1", 0.0012345m, 5), Use("s-2", 0.5m, 50), Use("s-3", 0.25m, 500)]));

        await DeleteEveryKeyAsync();
        var before = await _f.Redis.TimeMillisecondsAsync();
        await _f.Driver.PassAsync(CancellationToken.None);

        // The demo user's grant of 10 USD minus what the ledger consumed, rounded down to a micro-dollar.
        Assert.Equal(9_248_765L, await _f.Projection.GetBalanceMicrosAsync(user.ToString(), CancellationToken.None));
        var life = (await _f.Redis.ExecuteAsync("HMGET", [_f.Keys.KeyLifetime(user.ToString(), key.ToString()), "tokens", "spend"])).Items;
        Assert.Equal(3 * 120 + 5 + 50 + 500, life[0].AsInt64());
        // Each cost rounded up to a micro-dollar, as settlement counts it.
        Assert.Equal(1_235 + 500_000 + 250_000, life[1].AsInt64());
        var period = BudgetCalendar.CurrentPeriod("monthly", "UTC", DateTimeOffset.UtcNow)!.Value;
        var budgetKey = _f.Keys.BudgetSpent(user.ToString(), period.Id);
        Assert.Equal(751_235L, (await _f.Redis.ExecuteAsync("GET", [budgetKey])).AsInt64());
        Assert.True((await _f.Redis.ExecuteAsync("PTTL", [budgetKey])).AsInt64() > (long)(period.End - DateTimeOffset.UtcNow).TotalMilliseconds);
        var marked = (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Epoch])).AsString()!;
        // "<Redis unix ms when the rebuild began>-<random>"
        var epoch = long.Parse(marked[..marked.IndexOf('-', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(epoch, before, await _f.Redis.TimeMillisecondsAsync());
        // And the rest of the projection is back too: the demo key's policy.
        Assert.Single((await _f.Redis.ExecuteAsync("KEYS", [_f.Keys.Key("*")])).Items);
    }

    [Fact]
    public async Task Values_Redis_still_has_are_kept_and_a_present_epoch_is_not_rewritten()
    {
        var (user, key) = await DemoAsync();
        await _f.Redis.ExecuteAsync("SET", [_f.Keys.Balance(user.ToString()), 123]);
        await _f.Redis.ExecuteAsync("HSET", [_f.Keys.KeyLifetime(user.ToString(), key.ToString()), "tokens", 7, "spend", 8]);
        var epoch = (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Epoch])).AsString();
        Assert.NotNull(epoch);

        // The epoch alone is gone: the pass seeds only what is missing.
        await _f.Redis.ExecuteAsync("DEL", [_f.Keys.Epoch]);
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(123L, await _f.Projection.GetBalanceMicrosAsync(user.ToString(), CancellationToken.None));
        Assert.Equal(7L, (await _f.Redis.ExecuteAsync("HGET", [_f.Keys.KeyLifetime(user.ToString(), key.ToString()), "tokens"])).AsInt64());
        var rebuilt = (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Epoch])).AsString();
        Assert.NotNull(rebuilt);
        Assert.NotEqual(epoch, rebuilt);

        // With the epoch present, a pass leaves it as it is.
        await _f.Driver.PassAsync(CancellationToken.None);
        Assert.Equal(rebuilt, (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Epoch])).AsString());
    }

    [Fact]
    public async Task Seeding_waits_for_a_ledger_batch_in_progress_and_sees_what_it_committed()
    {
        var (user, key) = await DemoAsync();
        await _f.Redis.ExecuteAsync("DEL", [_f.Keys.Balance(user.ToString())]);
        // The ledger writer is between "read from the stream" and "committed" (it holds the gate) when the rebuild starts.
        var batch = await _f.Gate.EnterAsync(CancellationToken.None);
        var seeding = _f.Seeder.SeedAsync(CancellationToken.None);
        await UsageLedgerBatch.WriteAsync(_f.DataSource, [new UsageEvent
        {
            RequestId = "in-flight-batch", KeyId = key.ToString(), UserId = user.ToString(), Tokens = new TokenCounts(1, 0, 0, 1),
            Cost = 0.5m, StartedAt = DateTimeOffset.UtcNow, Status = 200,
        }]);
        batch.Dispose();
        await seeding.WaitAsync(TimeSpan.FromSeconds(60));
        // The balance was summed after the batch committed: it has the batch's charge.
        Assert.Equal(9_500_000L, await _f.Projection.GetBalanceMicrosAsync(user.ToString(), CancellationToken.None));
    }

    [Fact]
    public async Task A_rebuild_that_Redis_lost_again_midway_does_not_mark_the_projection_complete()
    {
        await DeleteEveryKeyAsync();
        var epoch = await _f.Projection.BeginRebuildAsync(CancellationToken.None);
        // Redis loses its data again while the rebuild runs: its marker goes with everything else.
        await DeleteEveryKeyAsync();
        Assert.False(await _f.Projection.MarkEpochAsync(epoch, CancellationToken.None));
        Assert.False(await _f.Projection.HasEpochAsync(CancellationToken.None));

        // The next rebuild completes and marks it.
        var again = await _f.Projection.BeginRebuildAsync(CancellationToken.None);
        Assert.True(await _f.Projection.MarkEpochAsync(again, CancellationToken.None));
        Assert.Equal(again, (await _f.Redis.ExecuteAsync("GET", [_f.Keys.Epoch])).AsString());
        Assert.Equal(0, (await _f.Redis.ExecuteAsync("EXISTS", [_f.Keys.Rebuilding])).AsInt64());
    }
}
