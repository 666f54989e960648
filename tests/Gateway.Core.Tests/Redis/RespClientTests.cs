using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis;

public sealed class RespClientTests : IAsyncLifetime
{
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RespClient _client = null!;

    public async Task InitializeAsync() => _client = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Round_trips_every_reply_type()
    {
        var key = _prefix + "k";
        var list = _prefix + "list";

        var ok = await _client.ExecuteAsync("SET", [key, "v\u00e9"]);
        Assert.Equal(RespType.SimpleString, ok.Type);
        Assert.Equal("OK", ok.AsString());

        var bulk = await _client.ExecuteAsync("GET", [key]);
        Assert.Equal(RespType.BulkString, bulk.Type);
        Assert.Equal("v\u00e9", bulk.AsString());

        var missing = await _client.ExecuteAsync("GET", [_prefix + "missing"]);
        Assert.True(missing.IsNull);
        Assert.Null(missing.AsString());

        var integer = await _client.ExecuteAsync("RPUSH", [list, "a", "", 42]);
        Assert.Equal(RespType.Integer, integer.Type);
        Assert.Equal(3, integer.AsInt64());

        var array = await _client.ExecuteAsync("LRANGE", [list, 0, -1]);
        Assert.Equal(RespType.Array, array.Type);
        Assert.Equal(["a", "", "42"], array.Items.Select(i => i.AsString()));

        var empty = await _client.ExecuteAsync("LRANGE", [_prefix + "nolist", 0, -1]);
        Assert.Equal(RespType.Array, empty.Type);
        Assert.Empty(empty.Items);

        var error = await Assert.ThrowsAsync<RedisServerException>(() => _client.ExecuteAsync("LPUSH", [key, "x"]));
        Assert.Equal("WRONGTYPE", error.Prefix);

        var nested = await _client.EvalAsync(new LuaScript("return {1, {2, 'x', {}}, 'y', false}"), [], []);
        Assert.Equal("[int(1), [int(2), bulk(x), []], bulk(y), nil]", RespParserTests.Describe(nested));

        // RESP2 null array: BLPOP timing out. Blocking, so on a dedicated connection.
        await using var dedicated = await _client.CreateDedicatedAsync();
        var nullArray = await dedicated.ExecuteBlockingAsync("BLPOP", [_prefix + "nolist", "0.01"], TimeSpan.FromMilliseconds(10));
        Assert.True(nullArray.IsNull);
    }

    [Fact]
    public async Task Round_trips_binary_and_large_values()
    {
        var binary = new byte[256];
        for (var i = 0; i < binary.Length; i++) binary[i] = (byte)i;
        await _client.ExecuteAsync("SET", [_prefix + "bin", binary]);
        Assert.True((await _client.ExecuteAsync("GET", [_prefix + "bin"])).Bytes.SequenceEqual(binary));

        // Far larger than one socket read or one pipe segment, in both directions.
        var big = new byte[3 * 1024 * 1024 + 17];
        new Random(1).NextBytes(big);
        await _client.ExecuteAsync("SET", [_prefix + "big", big]);
        var back = await _client.ExecuteAsync("GET", [_prefix + "big"]);
        Assert.Equal(big.Length, back.Bytes.Length);
        Assert.True(back.Bytes.SequenceEqual(big));
        await _client.ExecuteAsync("DEL", [_prefix + "big"]);
    }

    [Fact]
    public async Task Commands_queued_while_a_large_send_waits_for_the_socket_all_arrive_intact()
    {
        // 16 × 2 MiB outgrows the socket's send buffer, so the sender has to wait for Redis to read;
        // meanwhile other callers keep appending small commands behind it. Every value must arrive
        // whole and every counter reply must still match its own command.
        var payloads = Enumerable.Range(0, 16).Select(i =>
        {
            var bytes = new byte[2 * 1024 * 1024 + i];
            new Random(i).NextBytes(bytes);
            return bytes;
        }).ToArray();
        var counter = _prefix + "interleaved";
        var sets = new List<Task<RespValue>>();
        var incrs = new List<Task<RespValue>>();
        for (var i = 0; i < payloads.Length; i++)
        {
            sets.Add(_client.ExecuteAsync("SET", [_prefix + "big" + i, payloads[i]]));
            for (var j = 0; j < 50; j++) incrs.Add(_client.ExecuteAsync("INCR", [counter]));
        }
        await Task.WhenAll(sets);
        var counts = await Task.WhenAll(incrs);

        Assert.Equal(Enumerable.Range(1, incrs.Count).Select(i => (long)i), counts.Select(c => c.AsInt64()));
        for (var i = 0; i < payloads.Length; i++)
            Assert.True((await _client.ExecuteAsync("GET", [_prefix + "big" + i])).Bytes.SequenceEqual(payloads[i]), $"value {i} differs");
        // 32 MiB per run would pile up in the shared development Redis.
        await _client.ExecuteAsync("DEL", Enumerable.Range(0, payloads.Length).Select(i => (RedisArg)(_prefix + "big" + i)).ToArray());
    }

    [Fact]
    public async Task Pipelined_incrs_complete_in_the_order_they_were_issued()
    {
        var key = _prefix + "counter";
        // Issued back to back without awaiting: all 10,000 are in flight on the one connection, and
        // each reply must reach the caller whose command produced it.
        var tasks = new Task<RespValue>[10_000];
        for (var i = 0; i < tasks.Length; i++) tasks[i] = _client.ExecuteAsync("INCR", [key]);
        var results = await Task.WhenAll(tasks);

        for (var i = 0; i < results.Length; i++) Assert.Equal(i + 1, results[i].AsInt64());
    }

    [Fact]
    public async Task Concurrent_callers_get_distinct_counter_values()
    {
        var key = _prefix + "counter";
        var workers = Enumerable.Range(0, 50).Select(_ => Task.Run(async () =>
        {
            var seen = new List<long>(200);
            for (var i = 0; i < 200; i++) seen.Add(await _client.IncrByAsync(key));
            // One caller's own increments are ordered.
            Assert.Equal(seen.Order(), seen);
            return seen;
        }));
        var all = (await Task.WhenAll(workers)).SelectMany(s => s).Order().ToArray();

        Assert.Equal(Enumerable.Range(1, 10_000).Select(i => (long)i), all);
    }

    [Fact]
    public async Task Error_replies_fail_only_their_own_command()
    {
        var text = _prefix + "text";
        var counter = _prefix + "n";
        await _client.SetAsync(text, "not a number");

        var tasks = new List<Task<RespValue>>();
        for (var i = 0; i < 100; i++)
        {
            tasks.Add(_client.ExecuteAsync("INCR", [counter]));
            tasks.Add(_client.ExecuteAsync("INCR", [text]));
        }
        await Task.WhenAll(tasks).ContinueWith(_ => { });

        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(i + 1, (await tasks[2 * i]).AsInt64());
            var error = await Assert.ThrowsAsync<RedisServerException>(() => tasks[(2 * i) + 1]);
            Assert.Equal("ERR", error.Prefix);
        }
        Assert.True(_client.IsConnected);
    }

    [Fact]
    public async Task Server_errors_do_not_echo_command_arguments()
    {
        var error = await Assert.ThrowsAsync<RedisServerException>(() => _client.ExecuteAsync("NOSUCHCOMMAND", ["secret-arg-123"]));
        Assert.Equal("ERR", error.Prefix);
        Assert.DoesNotContain("secret-arg-123", error.Message, StringComparison.Ordinal);
        Assert.True(_client.IsConnected);
    }

    [Fact]
    public async Task Eval_loads_an_unknown_script_with_eval_then_uses_evalsha()
    {
        // A unique comment gives a SHA the server has never seen, without flushing the shared script cache.
        var script = new LuaScript("-- " + Guid.NewGuid().ToString("N") + "\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])");
        var exists = await _client.ExecuteAsync("SCRIPT", ["EXISTS", script.Sha1]);
        Assert.Equal(0, exists.Items[0].AsInt64());

        var first = await _client.EvalAsync(script, [_prefix + "c"], [5]);
        var cached = await _client.ExecuteAsync("SCRIPT", ["EXISTS", script.Sha1]);
        var second = await _client.EvalAsync(script, [_prefix + "c"], [7]);

        Assert.Equal(5, first.AsInt64());
        Assert.Equal(1, cached.Items[0].AsInt64());
        Assert.Equal(12, second.AsInt64());
    }

    [Fact]
    public async Task Eval_surfaces_script_errors()
    {
        var script = new LuaScript("-- " + Guid.NewGuid().ToString("N") + "\nreturn redis.error_reply('QUOTA exceeded')");
        var error = await Assert.ThrowsAsync<RedisServerException>(() => _client.EvalAsync(script, [], []));
        Assert.Equal("QUOTA", error.Prefix);
    }

    [Fact]
    public async Task String_helpers_work_against_the_server()
    {
        var key = _prefix + "s";
        Assert.Null(await _client.GetAsync(key));
        Assert.True(await _client.SetAsync(key, "one"));
        Assert.False(await _client.SetAsync(key, "two", onlyIfAbsent: true));
        Assert.True(await _client.SetAsync(key + "ttl", "x", TimeSpan.FromMinutes(1)));
        Assert.InRange((await _client.ExecuteAsync("PTTL", [key + "ttl"])).AsInt64(), 1, 60_000);
        Assert.Equal("one", await _client.GetAsync(key));
        Assert.Equal(10, await _client.IncrByAsync(key + "n", 10));
        Assert.True(await _client.ExpireAsync(key + "n", TimeSpan.FromMinutes(1)));
        Assert.True(await _client.DelAsync(key));
        Assert.Equal(1, await _client.DelAsync([key, key + "n"]));
        await _client.PingAsync();
    }

    [Fact]
    public async Task Selects_the_configured_database()
    {
        var key = _prefix + "db";
        await using var db3 = await RespClient.ConnectAsync(TestEnvironment.Redis + ",db=3");
        await db3.SetAsync(key, "in db 3", TimeSpan.FromMinutes(1));

        Assert.Equal("in db 3", await db3.GetAsync(key));
        Assert.Null(await _client.GetAsync(key));
        await db3.DelAsync(key);
    }

    [Fact]
    public async Task A_cancelled_command_does_not_shift_later_replies()
    {
        await using var dedicated = await _client.CreateDedicatedAsync();
        using var cts = new CancellationTokenSource();
        var blocked = dedicated.ExecuteBlockingAsync("BLPOP", [_prefix + "nothing", "0.2"], TimeSpan.FromSeconds(1), cts.Token);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => blocked);

        // The BLPOP's own (nil) reply still arrives and must be dropped, not handed to the GET.
        await dedicated.SetAsync(_prefix + "after", "value");
        Assert.Equal("value", await dedicated.GetAsync(_prefix + "after"));

        Assert.True((await _client.ExecuteAsync("PING", [], new CancellationToken(canceled: false))).BytesEqual("PONG"u8));
        var precancelled = _client.ExecuteAsync("PING", [], new CancellationToken(canceled: true));
        Assert.True(precancelled.IsCanceled);
    }

    [Fact]
    public async Task A_command_without_a_reply_times_out_and_the_connection_recovers()
    {
        await using var client = await RespClient.ConnectAsync(TestEnvironment.Redis + ",commandTimeout=200,reconnectMinDelay=10,reconnectMaxDelay=100");
        await using var dedicated = await client.CreateDedicatedAsync();

        // BLPOP for 30 s sent as an ordinary command: its 200 ms command timeout expires first.
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => dedicated.ExecuteAsync("BLPOP", [_prefix + "never", 30]));
        Assert.IsType<TimeoutException>(error.InnerException?.InnerException ?? error.InnerException);

        await Eventually.TrueAsync(async () =>
        {
            if (!dedicated.IsConnected) return false;
            await dedicated.PingAsync();
            return true;
        }, "the dedicated client to reconnect after a timeout");
    }

    [Fact]
    public async Task Blocking_commands_are_refused_on_the_shared_connection()
    {
        Assert.False(_client.IsDedicated);
        Assert.Throws<InvalidOperationException>(() => { _ = _client.ExecuteBlockingAsync("BLPOP", [_prefix + "x", 1], TimeSpan.FromSeconds(1)); });

        await using var dedicated = await _client.CreateDedicatedAsync();
        Assert.True(dedicated.IsDedicated);
        Assert.Equal(_client.Options, dedicated.Options);
    }

    [Fact]
    public async Task Connecting_to_a_port_without_a_server_fails_with_a_connection_error()
    {
        var port = FreePort();
        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => RespClient.ConnectAsync($"127.0.0.1:{port},connectTimeout=2000"));
        Assert.Contains($"127.0.0.1:{port}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Commands_fail_fast_while_not_connected()
    {
        await using var client = new RespClient(RespClientOptions.Parse($"127.0.0.1:{FreePort()},commandTimeout=60000"));

        Assert.False(client.IsConnected);
        var command = client.ExecuteAsync("PING", []);
        // Completed synchronously: nothing waits for a connection that is not there.
        Assert.True(command.IsFaulted);
        await Assert.ThrowsAsync<RedisConnectionException>(() => command);
        await Assert.ThrowsAsync<RedisConnectionException>(() => client.SubscribeAsync("c", (_, _) => { }));
    }

    [Fact]
    public async Task Dispose_fails_pending_commands_and_later_ones()
    {
        var dedicated = await _client.CreateDedicatedAsync();
        var pending = dedicated.ExecuteBlockingAsync("BLPOP", [_prefix + "never", 30], TimeSpan.FromSeconds(30));

        await dedicated.DisposeAsync();

        await Assert.ThrowsAsync<RedisConnectionException>(() => pending);
        Assert.False(dedicated.IsConnected);
        await Assert.ThrowsAsync<RedisConnectionException>(() => dedicated.ExecuteAsync("PING", []));
        await dedicated.DisposeAsync(); // idempotent
    }

    private static int FreePort()
    {
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
