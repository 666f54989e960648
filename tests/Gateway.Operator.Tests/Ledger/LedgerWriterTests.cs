using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Core.Usage;
using Gateway.Operator.Ledger;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Tests.Ledger;

public sealed class LedgerWriterTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private Guid _userId;
    private Guid _keyId;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        _userId = (await db.Users.SingleAsync()).Id;
        _keyId = (await db.ApiKeys.SingleAsync()).Id;
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private LedgerWriter NewWriter(string connectionString, string consumer = "test", TimeSpan? claimIdle = null) => new(
        _f.Redis,
        NpgsqlDataSource.Create(connectionString),
        _f.Keys,
        Options.Create(new LedgerOptions { ConsumerName = consumer, Block = TimeSpan.FromMilliseconds(100), ClaimIdle = claimIdle ?? TimeSpan.FromSeconds(30) }),
        NullLogger<LedgerWriter>.Instance);

    // Appends an event and reads every undelivered entry as another consumer, atomically (a running writer's blocked
    // read cannot get it first): what a writer SIGKILLed between its read and its acknowledgement leaves pending.
    private static readonly LuaScript AddAndLeavePending = new("""
        redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
        return redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 100000, 'STREAMS', KEYS[1], '>')
        """);

    private async Task AddPendingOnAsync(string deadConsumer, UsageEvent e)
    {
        await _f.Redis.StreamCreateGroupAsync(_f.Keys.UsageStream(0), ProjectionKeys.UsageGroup, "0");
        await _f.Redis.EvalAsync(AddAndLeavePending, [_f.Keys.UsageStream(0)], [ProjectionKeys.UsageGroup, deadConsumer, .. e.ToStreamFields()]);
    }

    /// <summary>Steady traffic: an event every 20 ms until cancelled, so the writer's blocking read never comes back empty.</summary>
    private Task SteadyTrafficAsync(CancellationToken stop) => Task.Run(async () =>
    {
        for (var i = 0; !stop.IsCancellationRequested; i++)
        {
            await AddAsync(Event($"steady-{i}", 0.001m));
            try { await Task.Delay(20, stop); } catch (OperationCanceledException) { }
        }
    });

    private async Task<int> RowsAsync(string prefix)
    {
        await using var db = _f.Db();
        return await db.UsageLog.CountAsync(r => r.RequestId.StartsWith(prefix));
    }

    private UsageEvent Event(string requestId, decimal cost) => new()
    {
        RequestId = requestId,
        KeyId = _keyId.ToString(),
        KeyVersion = 1,
        UserId = _userId.ToString(),
        Upstream = "default/mock",
        Model = "gpt-4o-mini",
        Route = "/v1/chat/completions",
        Tokens = new TokenCounts(12, 3, 0, 20),
        Cost = cost,
        PriceVersion = "2026-11-01",
        StartedAt = DateTimeOffset.UtcNow,
        DurationMs = 15,
        TimeToFirstByteMs = 5,
        Status = 200,
    };

    private Task AddAsync(UsageEvent e) => _f.Redis.StreamAddAsync(_f.Keys.UsageStream(0), e.ToStreamFields());

    [Fact]
    public async Task Events_in_every_shards_stream_and_in_the_stream_of_the_layout_before_hash_tags_are_written_and_the_old_stream_dropped()
    {
        // An upgrade from one usage stream to one per shard: what the old proxies left in the old stream is not lost.
        await _f.Redis.StreamAddAsync(_f.Keys.LegacyUsageStream, Event("legacy-1", 0.001m).ToStreamFields());
        await _f.Redis.StreamAddAsync(_f.Keys.LegacyUsageStream, Event("legacy-2", 0.002m).ToStreamFields());
        foreach (var shard in new[] { 0, 7, ProjectionKeys.ShardCount - 1 })
            await _f.Redis.StreamAddAsync(_f.Keys.UsageStream(shard), Event($"shard-{shard}", 0.003m).ToStreamFields());

        var writer = NewWriter(_f.Database.ConnectionString, claimIdle: TimeSpan.FromMilliseconds(300));
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(async () => await RowsAsync("legacy-") == 2 && await RowsAsync("shard-") == 3
                && (await _f.Redis.ExecuteAsync("EXISTS", [_f.Keys.LegacyUsageStream])).AsInt64() == 0,
                "every event written and the old stream deleted");
            // An old proxy still running writes the old stream again: the writer notices it (on its claim clock).
            await _f.Redis.StreamAddAsync(_f.Keys.LegacyUsageStream, Event("legacy-3", 0.001m).ToStreamFields());
            await Eventually.TrueAsync(async () => await RowsAsync("legacy-") == 3
                && (await _f.Redis.ExecuteAsync("EXISTS", [_f.Keys.LegacyUsageStream])).AsInt64() == 0,
                "the late event written and the old stream deleted again");
        }
        finally { await writer.StopAsync(CancellationToken.None); }
        Assert.Equal(0, await ShardedRedis.UsageLengthAsync(_f.Redis, _f.Keys));
        Assert.Equal(6, writer.Persisted);
    }

    [Fact]
    public async Task Persists_each_event_once_with_a_matching_consume_entry_even_when_replayed()
    {
        await AddAsync(Event("req-1", 0.00001234m));
        await AddAsync(Event("req-2", 0.5m));
        await AddAsync(Event("req-1", 0.00001234m)); // a replay of the same request

        var writer = NewWriter(_f.Database.ConnectionString);
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(async () => (await _f.Redis.StreamLengthAsync(_f.Keys.UsageStream(0))) == 0, "stream drained");
        }
        finally { await writer.StopAsync(CancellationToken.None); }

        await using var db = _f.Db();
        var rows = await db.UsageLog.OrderBy(r => r.RequestId).ToListAsync();
        Assert.Equal(["req-1", "req-2"], rows.Select(r => r.RequestId));
        var r1 = rows[0];
        Assert.Equal((12L, 3L, 0L, 20L), (r1.InputTokens, r1.CachedInputTokens, r1.CacheWriteTokens, r1.OutputTokens));
        Assert.Equal(0.00001234m, r1.Cost);
        Assert.Equal("2026-11-01", r1.PriceVersion);
        var consumes = await db.LedgerEntries.Where(e => e.Kind == LedgerKinds.Consume).OrderBy(e => e.RequestId).ToListAsync();
        Assert.Equal([-0.00001234m, -0.5m], consumes.Select(c => c.Amount));
        // Balance = sum of the ledger: the 10 USD welcome grant minus both requests.
        Assert.Equal(10m - 0.50001234m, await db.LedgerEntries.Where(e => e.UserId == _userId).SumAsync(e => e.Amount));
        Assert.NotNull((await db.ApiKeys.SingleAsync()).LastUsedAt);
    }

    [Fact]
    public async Task Events_wait_in_the_stream_while_PostgreSQL_is_unreachable_and_nothing_is_lost()
    {
        for (var i = 0; i < 5; i++) await AddAsync(Event($"down-{i}", 0.01m));

        // A writer whose database is unreachable reads the events but must not acknowledge them.
        var down = NewWriter("Host=127.0.0.1;Port=1;Username=postgres;Database=x;Timeout=1", consumer: "a");
        await down.StartAsync(CancellationToken.None);
        await Eventually.TrueAsync(async () => (await _f.Redis.StreamPendingAsync(_f.Keys.UsageStream(0), ProjectionKeys.UsageGroup)).Count == 5, "events delivered but pending");
        await down.StopAsync(CancellationToken.None);
        Assert.Equal(0, down.Persisted);

        // The same consumer, with the database back, finishes its own pending entries first.
        var up = NewWriter(_f.Database.ConnectionString, consumer: "a");
        await up.StartAsync(CancellationToken.None);
        try
        {
            // The writer acknowledges right after its commit: wait for both, since a stop that lands between the
            // two would (correctly) leave entries pending for an idempotent redelivery.
            await Eventually.TrueAsync(async () =>
            {
                await using var db = _f.Db();
                return await db.UsageLog.CountAsync() == 5
                    && (await _f.Redis.StreamPendingAsync(_f.Keys.UsageStream(0), ProjectionKeys.UsageGroup)).Count == 0;
            }, "all five rows persisted and acknowledged");
        }
        finally { await up.StopAsync(CancellationToken.None); }
        await using (var db = _f.Db()) Assert.Equal(5, await db.UsageLog.CountAsync());
    }

    [Fact]
    public async Task A_new_leaders_writer_takes_over_at_once_what_a_killed_leaders_writer_left_pending()
    {
        // The old leader's writer read these and was SIGKILLed before acknowledging them (perhaps after its commit).
        for (var i = 0; i < 5; i++) await AddPendingOnAsync("ledger-old-leader", Event($"orphan-{i}", 0.01m));
        await UsageLedgerBatch.WriteAsync(NpgsqlDataSource.Create(_f.Database.ConnectionString), [Event("orphan-0", 0.01m)]);

        // The new leader's writer: ClaimIdle far beyond the test, so only the take-over at the start of its term can
        // get them while traffic keeps its reads busy (before, they waited for the first empty read and 30 s more).
        using var stop = new CancellationTokenSource();
        var traffic = SteadyTrafficAsync(stop.Token);
        var writer = NewWriter(_f.Database.ConnectionString, consumer: "ledger-new-leader", claimIdle: TimeSpan.FromMinutes(10));
        await writer.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.TrueAsync(async () => await RowsAsync("orphan-") == 5
                && !(await _f.Redis.StreamPendingAsync(_f.Keys.UsageStream(0), ProjectionKeys.UsageGroup)).Consumers.ContainsKey("ledger-old-leader"),
                "the orphaned entries to be persisted and acknowledged while traffic continues");
            await Eventually.TrueAsync(async () => await RowsAsync("steady-") > 0, "the traffic to be persisted too");
        }
        finally
        {
            await stop.CancelAsync();
            await traffic;
            await writer.StopAsync(CancellationToken.None);
        }

        // Each exactly once: the one the old writer had committed was not written again.
        await using var db = _f.Db();
        var consumes = await db.LedgerEntries.Where(e => e.Kind == LedgerKinds.Consume && e.RequestId!.StartsWith("orphan-")).ToListAsync();
        Assert.Equal(5, consumes.Count);
        Assert.Equal(5, consumes.Select(c => c.RequestId).Distinct().Count());
    }

    [Fact]
    public async Task Entries_another_consumer_left_pending_are_claimed_once_idle_even_under_steady_traffic()
    {
        using var stop = new CancellationTokenSource();
        var traffic = SteadyTrafficAsync(stop.Token);
        var writer = NewWriter(_f.Database.ConnectionString, consumer: "ledger-leader", claimIdle: TimeSpan.FromSeconds(1));
        await writer.StartAsync(CancellationToken.None);
        try
        {
            // Past the start of its term (the take-over found nothing), reading steady traffic.
            await Eventually.TrueAsync(async () => await RowsAsync("steady-") > 0, "the writer to persist traffic");
            for (var i = 0; i < 3; i++) await AddPendingOnAsync("ledger-gone", Event($"late-orphan-{i}", 0.01m));

            // Before, a claim ran only after an empty read, which steady traffic never allows: these waited forever.
            await Eventually.TrueAsync(async () => await RowsAsync("late-orphan-") == 3, "the orphaned entries to be claimed under traffic");
        }
        finally
        {
            await stop.CancelAsync();
            await traffic;
            await writer.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task Ledger_entries_cannot_be_updated_or_deleted()
    {
        await using var db = _f.Db();
        var e = await Assert.ThrowsAsync<PostgresException>(() => db.Database.ExecuteSqlRawAsync("UPDATE ledger_entries SET amount = 1000"));
        Assert.Contains("append-only", e.MessageText, StringComparison.Ordinal);
        await Assert.ThrowsAsync<PostgresException>(() => db.Database.ExecuteSqlRawAsync("DELETE FROM ledger_entries"));
    }
}
