using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis.Cluster;

[Collection(RedisClusterCollection.Name)]
public sealed class RedisClusterClientTests(RedisClusterFixture fixture) : IAsyncLifetime
{
    private readonly ThrowawayRedisCluster _cluster = fixture.Cluster;
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RedisClusterClient _client = null!;

    public async Task InitializeAsync() => _client = await RedisClusterClient.ConnectAsync(_cluster.ConnectionString);

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Writes_and_reads_keys_on_every_master_through_one_client()
    {
        Assert.Equal(3, _client.MasterEndPoints.Count);
        for (var node = 0; node < 3; node++)
        {
            var (key, slot) = await _cluster.KeyOnNodeAsync(_prefix, node);
            Assert.True(await _client.SetAsync(key, "v" + node));
            Assert.Equal("v" + node, await _client.GetAsync(key));
            Assert.Equal(_cluster.Addresses[node], _client.EndPointForSlot(slot));
            // The key really lives on that node: its owner counts it, asked directly.
            Assert.Equal(1, (await _cluster.Client(node).ExecuteAsync("CLUSTER", ["COUNTKEYSINSLOT", slot])).AsInt64());
            Assert.Equal(1, (await _cluster.Client(node).ExecuteAsync("EXISTS", [key])).AsInt64());
        }
    }

    [Fact]
    public async Task Runs_scripts_on_the_master_of_their_keys_loading_them_once_per_node()
    {
        // A script new to every node: the first call on each node meets NOSCRIPT and falls back to EVAL.
        var script = new LuaScript("-- " + _prefix + "\nredis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[2])");
        for (var node = 0; node < 3; node++)
        {
            var (key, _) = await _cluster.KeyOnNodeAsync(_prefix, node, hashTag: true);
            var result = await _client.EvalAsync(script, [key + "a", key + "a"], ["s" + node]);
            Assert.Equal("s" + node, result.AsString());
            result = await _client.EvalAsync(script, [key + "b", key + "a"], ["t" + node]);
            Assert.Equal("s" + node, result.AsString()); // KEYS[2] was set by the first call
            Assert.Equal("t" + node, (await _cluster.Client(node).ExecuteAsync("GET", [key + "b"])).AsString());
            Assert.Equal(1, (await _cluster.Client(node).ExecuteAsync("SCRIPT", ["EXISTS", script.Sha1])).Items[0].AsInt64());
        }
    }

    [Fact]
    public async Task Refuses_keys_of_different_slots_before_sending()
    {
        var a = "{" + _prefix + "a}x";
        var b = "{" + _prefix + "b}y";
        Assert.NotEqual(RedisKeySlot.Of(a), RedisKeySlot.Of(b));
        var before = await MgetCallsAsync();

        var error = await Assert.ThrowsAsync<RedisServerException>(() => _client.ExecuteAsync("MGET", [a, b]));
        Assert.Equal("CROSSSLOT Keys in request don't hash to the same slot", error.Message);
        var script = new LuaScript("return 1");
        await Assert.ThrowsAsync<RedisServerException>(() => _client.EvalAsync(script, [a, b], []));

        Assert.Equal(before, await MgetCallsAsync()); // no node saw the MGET
        // Keys sharing a tag go through together.
        await _client.ExecuteAsync("MSET", [a, "1", a + "2", "2"]);
        Assert.Equal(["1", "2"], (await _client.ExecuteAsync("MGET", [a, a + "2"])).Items.Select(i => i.AsString()));
    }

    [Fact]
    public async Task Runs_node_wide_commands_on_each_master()
    {
        for (var node = 0; node < 3; node++) await _client.SetAsync((await _cluster.KeyOnNodeAsync(_prefix, node)).Key, "x");

        var sizes = await _client.ExecuteOnEachMasterAsync("DBSIZE", []);
        Assert.Equal(3, sizes.Count);
        Assert.All(sizes, size => Assert.True(size.AsInt64() >= 1));
        // Through the factory's extension too, which a stand-alone client answers once.
        Assert.Equal(3, (await ((IRedisClient)_client).ExecuteOnEachMasterAsync("PING", [])).Count);
    }

    [Fact]
    public async Task Publishes_to_a_subscriber_whatever_node_receives_the_publish()
    {
        var channel = _prefix + "invalidate";
        var received = new ConcurrentQueue<string>();
        await using var subscription = await _client.SubscribeAsync(channel, (_, message) => received.Enqueue(message));

        // Keyless commands rotate over the connected masters: a publish may enter the cluster anywhere.
        for (var i = 0; i < 3; i++) await _client.PublishAsync(channel, "m" + i);

        await Eventually.TrueAsync(() => Task.FromResult(received.Count == 3), "three messages through the cluster bus");
        Assert.Equal(["m0", "m1", "m2"], received.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Blocking_stream_reads_run_on_a_dedicated_cluster_client()
    {
        var stream = _prefix + "usage";
        await _client.StreamCreateGroupAsync(stream, "ledger");
        await Assert.ThrowsAsync<InvalidOperationException>(
            () => _client.StreamReadGroupAsync(stream, "ledger", "c1", 10, block: TimeSpan.FromSeconds(1)));

        await using var reader = await ((IRedisClient)_client).CreateDedicatedAsync();
        Assert.IsType<RedisClusterClient>(reader);
        Assert.True(reader.IsDedicated());
        var read = reader.StreamReadGroupAsync(stream, "ledger", "c1", 10, block: TimeSpan.FromSeconds(30));
        // The shared client is not held up by the blocked read, and its XADD wakes it.
        var id = await _client.StreamAddAsync(stream, ["cost", "12"]);

        var entries = await read.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(id, Assert.Single(entries).Id);
        Assert.Equal("12", entries[0].Fields["cost"]);
    }

    [Fact]
    public async Task The_factory_returns_a_cluster_client_only_for_cluster_connection_strings()
    {
        await using (var cluster = await RedisClients.ConnectAsync(_cluster.ConnectionString))
        {
            Assert.IsType<RedisClusterClient>(cluster);
            Assert.True(cluster.IsConnected);
            await cluster.PingAsync();
        }
        await using (var single = await RedisClients.ConnectAsync(TestEnvironment.Redis))
        {
            Assert.IsType<RespClient>(single);
            await using var dedicated = await single.CreateDedicatedAsync();
            Assert.True(((RespClient)dedicated).IsDedicated);
        }
        // A stand-alone Redis is not a cluster node: the cluster client says so instead of misrouting.
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => RedisClients.ConnectAsync(TestEnvironment.Redis + ",cluster=true"));
        Assert.Contains("cluster", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_client_created_in_the_background_serves_once_it_knows_the_slot_map()
    {
        await using var client = RedisClients.Create(RespClientOptions.Parse(_cluster.ConnectionString));
        var cluster = Assert.IsType<RedisClusterClient>(client);

        await Eventually.TrueAsync(() => Task.FromResult(client.IsConnected), "the background client to load the slot map");
        Assert.Equal(3, cluster.MasterEndPoints.Count);
        var (key, _) = await _cluster.KeyOnNodeAsync(_prefix, 2);
        await client.SetAsync(key, "bg");
        Assert.Equal("bg", (await _cluster.Client(2).ExecuteAsync("GET", [key])).AsString());
    }

    private async Task<long> MgetCallsAsync()
    {
        long calls = 0;
        for (var node = 0; node < 3; node++)
        {
            var stats = (await _cluster.Client(node).ExecuteAsync("INFO", ["commandstats"])).AsString()!;
            var line = stats.Split('\n').FirstOrDefault(l => l.StartsWith("cmdstat_mget:", StringComparison.Ordinal));
            if (line is null) continue;
            // cmdstat_mget:calls=N,usec=...,rejected_calls=R,failed_calls=F
            foreach (var field in line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim().Split(','))
            {
                var (name, value) = (field[..field.IndexOf('=', StringComparison.Ordinal)], field[(field.IndexOf('=', StringComparison.Ordinal) + 1)..]);
                if (name is "calls" or "rejected_calls") calls += long.Parse(value, CultureInfo.InvariantCulture);
            }
        }
        return calls;
    }
}
