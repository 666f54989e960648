using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis;

public sealed class RedisStreamsTests : IAsyncLifetime
{
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RespClient _client = null!;

    public async Task InitializeAsync() => _client = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync()
    {
        await _client.DelAsync(_prefix + "stream");
        await _client.DisposeAsync();
    }

    private string Stream => _prefix + "stream";

    [Fact]
    public async Task Creating_a_group_twice_is_not_an_error()
    {
        Assert.True(await _client.StreamCreateGroupAsync(Stream, "ledger"));
        Assert.False(await _client.StreamCreateGroupAsync(Stream, "ledger"));
        // MKSTREAM created the (empty) stream.
        Assert.Equal(0, await _client.StreamLengthAsync(Stream));
    }

    [Fact]
    public async Task Reads_acknowledges_and_reports_pending_entries()
    {
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++) ids.Add(await _client.StreamAddAsync(Stream, ["n", i, "text", "v\u00e9" + i]));

        var read = await _client.StreamReadGroupAsync(Stream, "ledger", "writer-a", count: 10);
        Assert.Equal(ids, read.Select(e => e.Id));
        Assert.Equal("1", read[1].Fields["n"]);
        Assert.Equal("v\u00e92", read[2].Fields["text"]);

        // Nothing new for the group now.
        Assert.Empty(await _client.StreamReadGroupAsync(Stream, "ledger", "writer-a", count: 10));

        Assert.Equal(1, await _client.StreamAckAsync(Stream, "ledger", [ids[0]]));
        var pending = await _client.StreamPendingAsync(Stream, "ledger");
        Assert.Equal(2, pending.Count);
        Assert.Equal(ids[1], pending.LowestId);
        Assert.Equal(ids[2], pending.HighestId);
        Assert.Equal(new Dictionary<string, long> { ["writer-a"] = 2 }, pending.Consumers);

        // The consumer's own pending history, as read after a restart.
        var history = await _client.StreamReadGroupAsync(Stream, "ledger", "writer-a", count: 10, id: "0");
        Assert.Equal(ids[1..], history.Select(e => e.Id));

        Assert.Equal(2, await _client.StreamAckAsync(Stream, "ledger", ids));
        var none = await _client.StreamPendingAsync(Stream, "ledger");
        Assert.Equal(0, none.Count);
        Assert.Null(none.LowestId);
        Assert.Empty(none.Consumers);
    }

    [Fact]
    public async Task Autoclaim_moves_a_dead_consumers_entries_to_another_consumer()
    {
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        var kept = await _client.StreamAddAsync(Stream, ["n", 1]);
        var deleted = await _client.StreamAddAsync(Stream, ["n", 2]);
        await _client.StreamReadGroupAsync(Stream, "ledger", "dead-pod", count: 10);
        // An entry trimmed or deleted while pending is reported, not returned.
        await _client.ExecuteAsync("XDEL", [Stream, deleted]);

        var claim = await _client.StreamAutoClaimAsync(Stream, "ledger", "live-pod", minIdle: TimeSpan.Zero);

        Assert.Equal("0-0", claim.NextStartId);
        Assert.Equal([kept], claim.Claimed.Select(e => e.Id));
        Assert.Equal("1", claim.Claimed[0].Fields["n"]);
        Assert.Equal([deleted], claim.DeletedIds);
        var pending = await _client.StreamPendingAsync(Stream, "ledger");
        Assert.Equal(new Dictionary<string, long> { ["live-pod"] = 1 }, pending.Consumers);
    }

    [Fact]
    public async Task Autoclaim_leaves_entries_that_are_not_idle_long_enough()
    {
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        await _client.StreamAddAsync(Stream, ["n", 1]);
        await _client.StreamReadGroupAsync(Stream, "ledger", "busy-pod", count: 10);

        var claim = await _client.StreamAutoClaimAsync(Stream, "ledger", "other-pod", minIdle: TimeSpan.FromHours(1));

        Assert.Empty(claim.Claimed);
        Assert.Equal(new Dictionary<string, long> { ["busy-pod"] = 1 }, (await _client.StreamPendingAsync(Stream, "ledger")).Consumers);
    }

    [Fact]
    public async Task Approximate_maxlen_trims_the_stream()
    {
        for (var i = 0; i < 1000; i++) await _client.StreamAddAsync(Stream, ["n", i], approximateMaxLength: 10);

        // "~" trims whole radix-tree nodes (100 entries by default), so the length is near, not exactly, 10.
        Assert.InRange(await _client.StreamLengthAsync(Stream), 10, 200);
    }

    [Fact]
    public async Task A_blocking_read_is_refused_on_the_shared_connection()
    {
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            _client.StreamReadGroupAsync(Stream, "ledger", "c", count: 1, block: TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task A_blocking_read_on_a_dedicated_client_returns_a_new_entry()
    {
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        await using var reader = await _client.CreateDedicatedAsync();

        var read = reader.StreamReadGroupAsync(Stream, "ledger", "writer", count: 10, block: TimeSpan.FromSeconds(20));
        // The shared connection is not held up by the blocked read.
        var id = await _client.StreamAddAsync(Stream, ["n", 42]);

        var entries = await read.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([id], entries.Select(e => e.Id));
        Assert.Equal("42", entries[0].Fields["n"]);
    }

    [Fact]
    public async Task A_usage_event_survives_the_stream_round_trip()
    {
        var usage = new UsageEvent
        {
            RequestId = "req-1",
            KeyId = "default/demo",
            KeyVersion = 2,
            UserId = "default/demo",
            Upstream = "default/mock",
            Model = "gpt-4o-mini",
            Route = "/v1/chat/completions",
            Tokens = new TokenCounts(100, 20, 0, 50),
            Cost = 0.00012345m,
            PriceVersion = "2025-01",
            StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_000_000),
            DurationMs = 1234,
            TimeToFirstByteMs = 80,
            Status = 200,
            Streamed = true,
        };
        await _client.StreamCreateGroupAsync(Stream, "ledger");
        await _client.StreamAddAsync(Stream, usage.ToStreamFields(), approximateMaxLength: 1_000_000);

        var read = await _client.StreamReadGroupAsync(Stream, "ledger", "writer", count: 1);

        Assert.Equal(usage, UsageEvent.FromStreamFields(read[0].Fields));
    }
}
