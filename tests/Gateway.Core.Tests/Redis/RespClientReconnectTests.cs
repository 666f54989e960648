using System.Collections.Concurrent;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis;

/// <summary>Kills and restarts a private redis-server (never the shared one).</summary>
public sealed class RespClientReconnectTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Fails_fast_while_redis_is_down_then_recovers_and_resubscribes()
    {
        await using var server = await ThrowawayRedisServer.StartAsync();
        await using var client = await RespClient.ConnectAsync(
            server.Address + ",commandTimeout=60000,reconnectMinDelay=20,reconnectMaxDelay=200");
        await using var blocking = await client.CreateDedicatedAsync();

        var received = new ConcurrentQueue<string>();
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reconnected += () => reconnected.TrySetResult();
        await using var subscription = await client.SubscribeAsync("invalidate", (_, p) => received.Enqueue(p));
        Assert.Equal(1, await client.PublishAsync("invalidate", "before"));
        await Eventually.TrueAsync(() => Task.FromResult(received.Contains("before")), "the message before the outage");
        var inFlight = blocking.ExecuteBlockingAsync("BLPOP", ["never", 50], TimeSpan.FromSeconds(50));
        // Queued on the server behind the BLPOP, so still unanswered when the server dies.
        var queued = Enumerable.Range(0, 100).Select(_ => blocking.ExecuteAsync("PING", [])).ToArray();

        server.Kill();

        // Commands in flight when the connection breaks fail (they do not wait for their 60 s timeout).
        await Assert.ThrowsAsync<RedisConnectionException>(() => inFlight.WaitAsync(Deadline));
        foreach (var command in queued) await Assert.ThrowsAsync<RedisConnectionException>(() => command.WaitAsync(Deadline));
        await Eventually.TrueAsync(() => Task.FromResult(!client.IsConnected), "the client to notice the outage");
        var whileDown = client.ExecuteAsync("PING", []);
        Assert.True(whileDown.IsFaulted, "a command while disconnected must fail immediately, not queue");
        await Assert.ThrowsAsync<RedisConnectionException>(() => whileDown);
        await Assert.ThrowsAsync<RedisConnectionException>(() => client.SubscribeAsync("other", (_, _) => { }));
        Assert.False(reconnected.Task.IsCompleted);

        await server.RestartAsync();

        await reconnected.Task.WaitAsync(Deadline);
        await Eventually.TrueAsync(() => Task.FromResult(client.IsConnected), "the command connection to come back");
        Assert.Equal(1, await client.IncrByAsync("counter"));
        // The Reconnected event is raised after the channel was subscribed again on the new connection.
        Assert.Equal(1, await client.PublishAsync("invalidate", "after"));
        await Eventually.TrueAsync(() => Task.FromResult(received.Contains("after")), "the message after the restart");
        await Eventually.TrueAsync(async () =>
        {
            if (!blocking.IsConnected) return false;
            await blocking.PingAsync();
            return true;
        }, "the dedicated client to come back");
    }

    [Fact]
    public async Task Reconnects_again_after_repeated_outages()
    {
        await using var server = await ThrowawayRedisServer.StartAsync();
        await using var client = await RespClient.ConnectAsync(server.Address + ",reconnectMinDelay=10,reconnectMaxDelay=100");

        for (var round = 1; round <= 3; round++)
        {
            server.Kill();
            await Eventually.TrueAsync(() => Task.FromResult(!client.IsConnected), $"outage {round} to be noticed");
            await server.RestartAsync();
            await Eventually.TrueAsync(async () =>
            {
                if (!client.IsConnected) return false;
                await client.SetAsync("k", round);
                return true;
            }, $"recovery {round}");
            Assert.Equal(round.ToString(System.Globalization.CultureInfo.InvariantCulture), await client.GetAsync("k"));
        }
    }

    [Fact]
    public async Task Authenticates_with_the_password_and_never_reveals_it()
    {
        const string password = "pw-7f3a9c-secret";
        await using var server = await ThrowawayRedisServer.StartAsync(password);

        var error = await Assert.ThrowsAsync<RedisConnectionException>(() => RespClient.ConnectAsync(server.Address + ",password=wrong-7f3a9c"));
        Assert.DoesNotContain("wrong-7f3a9c", error.ToString(), StringComparison.Ordinal);
        var noAuth = await RespClient.ConnectAsync(server.Address);
        await using (noAuth)
        {
            var denied = await Assert.ThrowsAsync<RedisServerException>(() => noAuth.ExecuteAsync("PING", []));
            Assert.Equal("NOAUTH", denied.Prefix);
        }

        await using var client = await RespClient.ConnectAsync(server.Address + ",password=" + password);
        await client.PingAsync();
        // The subscriber connection authenticates too.
        await using var subscription = await client.SubscribeAsync("c", (_, _) => { });
        Assert.Equal(1, await client.PublishAsync("c", "x"));
        Assert.DoesNotContain(password, client.Options.ToString(), StringComparison.Ordinal);

        // ACL user: AUTH user password.
        await client.ExecuteAsync("ACL", ["SETUSER", "proxy", "on", ">proxy-pw-1", "~*", "&*", "+@all"]);
        await using var asUser = await RespClient.ConnectAsync(server.Address + ",user=proxy,password=proxy-pw-1");
        Assert.Equal("proxy", (await asUser.ExecuteAsync("ACL", ["WHOAMI"])).AsString());
    }
}
