using System.Collections.Concurrent;
using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis.Cluster;

/// <summary>Tests that kill a node: each starts its own cluster.</summary>
public sealed class RedisClusterFailureTests
{
    private static readonly TimeSpan NoHang = TimeSpan.FromSeconds(30);
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();

    [Fact]
    public async Task A_killed_node_fails_its_commands_with_a_connection_error_and_the_others_keep_serving()
    {
        await using var cluster = await ThrowawayRedisCluster.StartAsync();
        await using var client = await RedisClusterClient.ConnectAsync(cluster.ConnectionString + ",reconnectMinDelay=50,reconnectMaxDelay=200");
        var (lost, _) = await cluster.KeyOnNodeAsync(_prefix, 2);
        var (kept, _) = await cluster.KeyOnNodeAsync(_prefix, 0);
        await client.SetAsync(lost, "1");
        await client.SetAsync(kept, "1");

        await cluster.KillAsync(2);

        // Fails fast (the proxy answers 503), also for commands issued while the node stays down.
        await Assert.ThrowsAsync<RedisConnectionException>(() => client.GetAsync(lost).WaitAsync(NoHang));
        await Assert.ThrowsAsync<RedisConnectionException>(() => client.IncrByAsync(lost, 1).WaitAsync(NoHang));
        Assert.Equal("1", await client.GetAsync(kept).WaitAsync(NoHang));
        Assert.True(client.IsConnected);
    }

    [Fact]
    public async Task A_subscriber_whose_node_died_subscribes_again_on_another_and_raises_Reconnected()
    {
        await using var cluster = await ThrowawayRedisCluster.StartAsync();
        await using var client = await RedisClusterClient.ConnectAsync(cluster.ConnectionString + ",reconnectMinDelay=50,reconnectMaxDelay=200");
        var channel = _prefix + "invalidate";
        var received = new ConcurrentQueue<string>();
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        client.Reconnected += () => reconnected.TrySetResult();
        await using var subscription = await client.SubscribeAsync(channel, (_, message) => received.Enqueue(message));

        var before = await SubscribedNodeAsync(cluster, channel, except: -1);
        await cluster.KillAsync(before);

        await reconnected.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var after = await SubscribedNodeAsync(cluster, channel, except: before);
        Assert.NotEqual(before, after);
        await Eventually.TrueAsync(async () =>
        {
            await client.PublishAsync(channel, "after-failover");
            return received.Contains("after-failover");
        }, "a message published after the subscriber moved");
    }

    // The node holding the subscription, asked with PUBSUB NUMSUB (node-local in a cluster).
    private static async Task<int> SubscribedNodeAsync(ThrowawayRedisCluster cluster, string channel, int except) =>
        int.Parse((await Eventually.ReturnsAsync(async () =>
        {
            for (var node = 0; node < 3; node++)
            {
                if (node == except) continue;
                var reply = await cluster.Client(node).ExecuteAsync("PUBSUB", ["NUMSUB", channel]);
                if (reply.Items[1].AsInt64() == 1) return node.ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            return null;
        }, "a node with the subscription"))!, System.Globalization.CultureInfo.InvariantCulture);
}
