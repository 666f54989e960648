using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Testing;
using static Gateway.Core.Tests.Enforcement.EnforcementTestContext;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>
/// Issue #12 (Redis flushed under traffic): the usage outbox holds every event this process wrote until the ledger
/// writer's group has read and acknowledged it; when Redis loses its data (a real FLUSHALL of a Redis of the test's
/// own), what it took — held events and reservations of requests in flight — is charged again once the user's
/// balance is rebuilt, and nothing written into the new Redis is charged twice.
/// </summary>
public sealed class UsageOutboxTests
{
    private static async Task<Reservation> AdmitAsync(Enforcer enforcer, string id = "k1")
    {
        var result = await enforcer.AdmitAsync(Request(Key(id), User(), reservedMicros: 5_000));
        Assert.True(result.Allowed);
        return result.Reservation!;
    }

    private static async Task<List<(string Id, Dictionary<string, string> Fields)>> StreamAsync(IRedisClient redis, ProjectionKeys keys)
    {
        var reply = await redis.ExecuteAsync("XRANGE", [keys.UsageStream(ProjectionKeys.ShardOf("u1")), "-", "+"]);
        var list = new List<(string, Dictionary<string, string>)>();
        foreach (var entry in reply.Items)
        {
            var pairs = entry.Items[1].Items;
            var fields = new Dictionary<string, string>(StringComparer.Ordinal);
            for (var i = 0; i + 1 < pairs.Count; i += 2) fields[pairs[i].AsString()!] = pairs[i + 1].AsString()!;
            list.Add((entry.Items[0].AsString()!, fields));
        }
        return list;
    }

    [Fact]
    public async Task Events_are_let_go_only_once_the_ledger_group_has_read_and_acknowledged_them()
    {
        await using var t = await CreateAsync();
        var outbox = new UsageOutbox(t.Redis, t.Keys);
        var enforcer = new Enforcer(t.Redis, t.Keys, t.Clock, outbox: outbox);
        await t.SetBalanceAsync("u1", 1_000_000);
        await t.Redis.ExecuteAsync("SET", [t.Keys.Epoch, "1"]);
        await t.Redis.ExecuteAsync("XGROUP", ["CREATE", t.Keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, "0", "MKSTREAM"]);
        for (var i = 0; i < 3; i++)
        {
            var r = await AdmitAsync(enforcer);
            Assert.Equal(SettleOutcome.Settled, await enforcer.SettleAsync(Settlement(r, 4_000, new TokenCounts(10, 0, 0, 20))));
        }
        await outbox.CheckAsync();
        Assert.Equal(3, outbox.Count);

        // Read by the writer but not acknowledged (PostgreSQL may still fail): still held.
        var read = await t.Redis.StreamReadGroupAsync(t.Keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, "w", 10, null, ">");
        Assert.Equal(3, read.Count);
        await outbox.CheckAsync();
        Assert.Equal(3, outbox.Count);

        // The first two acknowledged (committed): let go; the third is still pending.
        await t.Redis.StreamAckAsync(t.Keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, [read[0].Id, read[1].Id]);
        await outbox.CheckAsync();
        Assert.Equal(1, outbox.Count);
        await t.Redis.StreamAckAsync(t.Keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, [read[2].Id]);
        await outbox.CheckAsync();
        Assert.Equal(0, outbox.Count);
        Assert.Equal(0, outbox.Recharged);
    }

    [Fact]
    public async Task A_flush_charges_again_what_the_ledger_writer_did_not_have_and_not_what_was_written_after_the_rebuild()
    {
        await using var server = await ThrowawayRedisServer.StartAsync();
        await using var redis = await RespClient.ConnectAsync(server.Address);
        var keys = new ProjectionKeys("tg:");
        var clock = new ManualClock(T0);
        var outbox = new UsageOutbox(redis, keys);
        var enforcer = new Enforcer(redis, keys, clock, outbox: outbox);
        await redis.ExecuteAsync("SET", [keys.Balance("u1"), 1_000_000]);
        await redis.ExecuteAsync("SET", [keys.Epoch, (await redis.TimeMillisecondsAsync()).ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await redis.ExecuteAsync("XGROUP", ["CREATE", keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, "0", "MKSTREAM"]);

        // A reaches the ledger (read and acknowledged); B is still in the stream when Redis loses everything.
        var a = await AdmitAsync(enforcer);
        await enforcer.SettleAsync(Settlement(a, 4_000, new TokenCounts(10, 0, 0, 20)));
        var read = await redis.StreamReadGroupAsync(keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, "w", 10, null, ">");
        await redis.StreamAckAsync(keys.UsageStream(ProjectionKeys.ShardOf("u1")), ProjectionKeys.UsageGroup, [read[0].Id]);
        var b = await AdmitAsync(enforcer);
        await enforcer.SettleAsync(Settlement(b, 3_000, new TokenCounts(7, 0, 0, 9)));
        var bId = (await redis.ExecuteAsync("XREVRANGE", [keys.UsageStream(ProjectionKeys.ShardOf("u1")), "+", "-", "COUNT", 1])).Items[0].Items[0].AsString()!;
        var bMs = long.Parse(bId[..bId.IndexOf('-', StringComparison.Ordinal)], System.Globalization.CultureInfo.InvariantCulture);
        await outbox.CheckAsync();
        Assert.Equal(1, outbox.Count);

        await redis.ExecuteAsync("FLUSHALL", []);
        // Nothing to do while the projection is missing: no balance to charge against.
        await outbox.CheckAsync();
        Assert.Empty(await StreamAsync(redis, keys));

        // The operator's rebuild: the balance from the ledger (which has A, not B), then the epoch = when it began: a later
        // millisecond than B's event (a rebuild follows a loss by far more than that; here the test waits for one).
        await Eventually.TrueAsync(async () => await redis.TimeMillisecondsAsync() > bMs, "Redis' clock to pass B's event");
        var rebuiltAt = await redis.TimeMillisecondsAsync();
        await redis.ExecuteAsync("SET", [keys.Balance("u1"), 1_000_000 - 4_000]);
        // C is admitted and settled into the new Redis before this process looks again: it must not be charged twice.
        var c = await AdmitAsync(enforcer);
        await enforcer.SettleAsync(Settlement(c, 2_000, new TokenCounts(5, 0, 0, 5)));
        await redis.ExecuteAsync("SET", [keys.Epoch, rebuiltAt.ToString(System.Globalization.CultureInfo.InvariantCulture) + "-1f2e3d4c"]);
        await outbox.CheckAsync();

        Assert.Equal(1, outbox.Recharged);
        var stream = await StreamAsync(redis, keys);
        Assert.Equal(2, stream.Count);
        Assert.Equal(c.RequestId, stream[0].Fields["request_id"]);
        Assert.False(stream[0].Fields.ContainsKey("recharge_id"));
        Assert.Equal(b.RequestId, stream[1].Fields["request_id"]);
        Assert.Equal(32, stream[1].Fields["recharge_id"].Length);
        Assert.Equal("3000", stream[1].Fields["recharge_micros"]);
        // Rebuilt balance − C − B.
        Assert.Equal(1_000_000 - 4_000 - 2_000 - 3_000, (await redis.ExecuteAsync("GET", [keys.Balance("u1")])).AsInt64());
        // The key's lifetime had only C (the flush took A and B's): B's tokens and spend are added back.
        var life = (await redis.ExecuteAsync("HMGET", [keys.KeyLifetime("u1", "k1"), "tokens", "spend"])).Items;
        Assert.Equal(10 + 16, life[0].AsInt64());
        Assert.Equal(2_000 + 3_000, life[1].AsInt64());

        // Another check charges nothing more; the recharge is held until the ledger writer has it.
        await outbox.CheckAsync();
        Assert.Equal(1, outbox.Recharged);
        Assert.Equal(2, outbox.Count);
    }

    [Fact]
    public async Task A_request_whose_reservation_vanished_is_charged_once_its_users_balance_is_back()
    {
        await using var server = await ThrowawayRedisServer.StartAsync();
        await using var redis = await RespClient.ConnectAsync(server.Address);
        var keys = new ProjectionKeys("tg:");
        var outbox = new UsageOutbox(redis, keys);
        var enforcer = new Enforcer(redis, keys, new ManualClock(T0), outbox: outbox);
        await redis.ExecuteAsync("SET", [keys.Balance("u1"), 1_000_000]);
        await redis.ExecuteAsync("SET", [keys.Epoch, "1"]);
        var r = await AdmitAsync(enforcer);

        // Redis loses everything while the request runs; its settlement finds nothing to settle.
        await redis.ExecuteAsync("FLUSHALL", []);
        Assert.Equal(SettleOutcome.AlreadySettled, await enforcer.SettleAsync(Settlement(r, 4_200, new TokenCounts(10, 0, 0, 20))));
        await outbox.CheckAsync();
        Assert.Empty(await StreamAsync(redis, keys));
        Assert.Equal(1, outbox.Count);

        // The epoch is back but this user's balance is not yet: still waiting.
        await redis.ExecuteAsync("SET", [keys.Epoch, "2"]);
        await outbox.CheckAsync();
        Assert.Empty(await StreamAsync(redis, keys));

        await redis.ExecuteAsync("SET", [keys.Balance("u1"), 500_000]);
        await outbox.CheckAsync();
        var stream = await StreamAsync(redis, keys);
        var e = Assert.Single(stream);
        Assert.Equal(r.RequestId, e.Fields["request_id"]);
        Assert.Equal("4200", e.Fields["recharge_micros"]);
        Assert.Equal(500_000 - 4_200, (await redis.ExecuteAsync("GET", [keys.Balance("u1")])).AsInt64());
        Assert.Equal(1, outbox.Recharged);
    }

    [Fact]
    public async Task An_event_reported_after_the_rebuild_was_noticed_is_still_charged_again_if_it_predates_the_rebuild()
    {
        // A starved thread pool can run a check between a settlement's XADD (before the loss) and its Written() (after
        // the new epoch was seen): its id, older than the rebuild, still marks it as lost.
        await using var t = await CreateAsync();
        var outbox = new UsageOutbox(t.Redis, t.Keys);
        await t.SetBalanceAsync("u1", 100_000);
        var now = await t.Redis.TimeMillisecondsAsync();
        await t.Redis.ExecuteAsync("SET", [t.Keys.Epoch, $"{now}-0badcafe"]);
        await outbox.CheckAsync();
        var usage = Settlement(new Reservation
        {
            RequestId = "late-1", KeyId = "k1", UserId = "u1", ReservedMicros = 1_000, BudgetKey = t.Keys.BudgetSpent("u1", "none"),
            StartedAt = T0, LeaseExpiresAt = T0.AddMinutes(5),
        }, 1_000, new TokenCounts(1, 0, 0, 1)).Usage;
        outbox.Written($"{now - 5_000}-0", usage, 1_000, t.Keys.BudgetSpent("u1", "none"));
        outbox.Written($"{now + 1}-0", usage with { RequestId = "after-1" }, 1_000, t.Keys.BudgetSpent("u1", "none"));
        await outbox.CheckAsync();
        Assert.Equal(1, outbox.Recharged);
        var events = await t.UsageEventsAsync();
        Assert.Equal("late-1", Assert.Single(events).RequestId);
        Assert.Equal(99_000, await t.GetLongAsync(t.Keys.Balance("u1")));
    }

    [Fact]
    public async Task A_recharge_that_never_finds_its_balance_is_given_up_after_the_configured_checks()
    {
        await using var t = await CreateAsync();
        var outbox = new UsageOutbox(t.Redis, t.Keys, new UsageOutboxOptions { MaxRechargeAttempts = 3 });
        var enforcer = new Enforcer(t.Redis, t.Keys, t.Clock, outbox: outbox);
        await t.SetBalanceAsync("u1", 1_000_000);
        await t.Redis.ExecuteAsync("SET", [t.Keys.Epoch, "1"]);
        var r = await AdmitAsync(enforcer);
        await t.Redis.ExecuteAsync("DEL", [t.Keys.Reservation(r.UserId, r.RequestId), t.Keys.Balance("u1")]);
        await enforcer.SettleAsync(Settlement(r, 1_000, new TokenCounts(1, 0, 0, 1)));
        for (var i = 0; i < 3; i++) await outbox.CheckAsync();
        Assert.Equal(0, outbox.Count);
        Assert.Equal(0, outbox.Recharged);
    }

    [Fact]
    public void Options_outside_their_ranges_are_reported()
    {
        var errors = new UsageOutboxOptions { Interval = TimeSpan.Zero, MaxHeld = 5, MaxRechargeAttempts = 0 }.Validate();
        Assert.Equal(3, errors.Count);
        Assert.Empty(new UsageOutboxOptions().Validate());
    }
}
