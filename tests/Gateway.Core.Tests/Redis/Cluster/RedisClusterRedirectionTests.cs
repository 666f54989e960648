using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis.Cluster;

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterRedirectionTests(RedisClusterFixture fixture) : IAsyncLifetime
{
    private readonly ThrowawayRedisCluster _cluster = fixture.Cluster;
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RedisClusterClient _client = null!;

    public async Task InitializeAsync() => _client = await RedisClusterClient.ConnectAsync(_cluster.ConnectionString);

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Follows_MOVED_after_a_slot_moved_and_updates_its_map()
    {
        var (key, slot) = await _cluster.KeyOnNodeAsync(_prefix, 0);
        await _client.SetAsync(key, "before");
        var script = new LuaScript("return redis.call('GET', KEYS[1])");
        Assert.Equal("before", (await _client.EvalAsync(script, [key], [])).AsString());

        var (_, otherSlot) = await _cluster.KeyOnNodeAsync(_prefix, 0, hashTag: true);
        Assert.NotEqual(slot, otherSlot);

        await _cluster.MoveSlotAsync(slot, to: 1);
        await _cluster.MoveSlotAsync(otherSlot, to: 1);
        Assert.Equal(1, await _cluster.OwnerOfSlotAsync(slot));
        Assert.Equal(_cluster.Addresses[0], _client.EndPointForSlot(slot)); // the client does not know yet

        Assert.Equal("before", await _client.GetAsync(key));
        Assert.Equal(_cluster.Addresses[1], _client.EndPointForSlot(slot));
        // The MOVED also refreshed the whole map in the background: the other moved slot is known without a redirection.
        await Eventually.TrueAsync(() => Task.FromResult(_client.EndPointForSlot(otherSlot) == _cluster.Addresses[1]),
            "the refreshed slot map to show the other moved slot");
        Assert.Equal("before", (await _client.EvalAsync(script, [key], [])).AsString());
        await _client.SetAsync(key, "after");
        Assert.Equal("after", (await _cluster.Client(1).ExecuteAsync("GET", [key])).AsString());
    }

    [Fact]
    public async Task Follows_ASK_while_a_slot_is_half_migrated_without_changing_its_map()
    {
        var (moved, slot) = await _cluster.KeyOnNodeAsync(_prefix, 2, hashTag: true);
        var stayed = moved + ":stayed";
        var created = moved + ":created";
        await _client.SetAsync(moved, "m");
        await _client.SetAsync(stayed, "s");
        var source = _cluster.Addresses[2];
        Assert.Equal(source, _client.EndPointForSlot(slot));

        await _cluster.BeginSlotMigrationAsync(slot, to: 0);
        try
        {
            await _cluster.MigrateKeyAsync(moved, from: 2, to: 0);

            // The source answers "ASK slot target" for the migrated key: ASKING + GET on the target.
            Assert.Equal("m", await _client.GetAsync(moved));
            var script = new LuaScript("return redis.call('GET', KEYS[1])");
            Assert.Equal("m", (await _client.EvalAsync(script, [moved], [])).AsString());
            Assert.Equal("s", await _client.GetAsync(stayed));
            // Many callers at once on the same connections: each ASKING stays glued to its own command.
            var burst = Enumerable.Range(0, 100).SelectMany(_ => new[] { _client.GetAsync(moved), _client.GetAsync(stayed) }).ToArray();
            var values = await Task.WhenAll(burst);
            for (var i = 0; i < values.Length; i++) Assert.Equal(i % 2 == 0 ? "m" : "s", values[i]);
            // A new key of a migrating slot is created on the target.
            await _client.SetAsync(created, "c");
            Assert.Equal("c", await AskingGetAsync(0, created));
            // A multi-key command over keys on both sides gets TRYAGAIN until the migration ends: after a few
            // retries it fails as a connection-level error (callers answer 503), naming TRYAGAIN.
            var error = await Assert.ThrowsAsync<RedisConnectionException>(() => _client.ExecuteAsync("MGET", [moved, stayed]));
            Assert.Contains("TRYAGAIN", error.Message, StringComparison.Ordinal);

            Assert.Equal(source, _client.EndPointForSlot(slot)); // ASK changes nothing in the map
        }
        finally
        {
            await _cluster.FinishSlotMigrationAsync(slot, from: 2, to: 0);
        }
        Assert.Equal(["m", "s"], (await _client.ExecuteAsync("MGET", [moved, stayed])).Items.Select(i => i.AsString()));
        Assert.Equal(_cluster.Addresses[0], _client.EndPointForSlot(slot));
    }

    // GET of a key in a slot the node is importing: only allowed right after ASKING on the same connection.
    private async Task<string?> AskingGetAsync(int node, string key)
    {
        await using var direct = await RespClient.ConnectAsync(_cluster.Addresses[node]);
        var asking = direct.ExecuteAsync("ASKING", []);
        var get = direct.ExecuteAsync("GET", [key]);
        await asking;
        return (await get).AsString();
    }
}
