using System.Collections.Concurrent;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis;

public sealed class RespClientPubSubTests : IAsyncLifetime
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RespClient _client = null!;

    public async Task InitializeAsync() => _client = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Delivers_published_messages_to_the_handler()
    {
        var channel = _prefix + "invalidate";
        var received = new ConcurrentQueue<(string Channel, string Payload)>();
        await using var subscription = await _client.SubscribeAsync(channel, (c, p) => received.Enqueue((c, p)));

        // SubscribeAsync returns after Redis confirmed, so this publish has exactly one receiver.
        Assert.Equal(1, await _client.PublishAsync(channel, "key:abc"));
        Assert.Equal(1, await _client.PublishAsync(channel, "user:\u00e9t\u00e9"));

        await Eventually.TrueAsync(() => Task.FromResult(received.Count == 2), "both messages");
        Assert.Equal([(channel, "key:abc"), (channel, "user:\u00e9t\u00e9")], received);
    }

    [Fact]
    public async Task Disposing_a_subscription_unsubscribes_when_it_was_the_last_one()
    {
        var channel = _prefix + "c";
        var first = new ConcurrentQueue<string>();
        var second = new ConcurrentQueue<string>();
        var a = await _client.SubscribeAsync(channel, (_, p) => first.Enqueue(p));
        var b = await _client.SubscribeAsync(channel, (_, p) => second.Enqueue(p));

        // Both handlers share one server-side subscription.
        Assert.Equal(1, await _client.PublishAsync(channel, "1"));
        await Eventually.TrueAsync(() => Task.FromResult(first.Count == 1 && second.Count == 1), "message 1 in both handlers");

        await a.DisposeAsync();
        Assert.Equal(1, await _client.PublishAsync(channel, "2"));
        await Eventually.TrueAsync(() => Task.FromResult(second.Count == 2), "message 2 in the remaining handler");

        await b.DisposeAsync();
        await b.DisposeAsync(); // idempotent
        // UNSUBSCRIBE was confirmed before DisposeAsync returned: nobody listens any more.
        Assert.Equal(0, await _client.PublishAsync(channel, "3"));
        Assert.Equal(["1"], first);
        Assert.Equal(["1", "2"], second);
    }

    [Fact]
    public async Task A_throwing_handler_does_not_stop_delivery()
    {
        var channel = _prefix + "c";
        var calls = 0;
        var received = new ConcurrentQueue<string>();
        await using var throwing = await _client.SubscribeAsync(channel, (_, _) =>
        {
            Interlocked.Increment(ref calls);
            throw new InvalidOperationException("handler bug");
        });
        await using var healthy = await _client.SubscribeAsync(channel, (_, p) => received.Enqueue(p));

        await _client.PublishAsync(channel, "a");
        await _client.PublishAsync(channel, "b");

        await Eventually.TrueAsync(() => Task.FromResult(received.Count == 2), "both messages despite the throwing handler");
        Assert.Equal(2, Volatile.Read(ref calls));
    }

    [Fact]
    public async Task Channels_are_delivered_only_to_their_own_handlers()
    {
        var one = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var two = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var s1 = await _client.SubscribeAsync(_prefix + "one", (_, p) => one.TrySetResult(p));
        await using var s2 = await _client.SubscribeAsync(_prefix + "two", (_, p) => two.TrySetResult(p));

        await _client.PublishAsync(_prefix + "two", "for two");
        await _client.PublishAsync(_prefix + "one", "for one");

        Assert.Equal("for one", await one.Task.WaitAsync(Deadline));
        Assert.Equal("for two", await two.Task.WaitAsync(Deadline));
    }

    [Fact]
    public async Task Commands_keep_working_alongside_subscriptions()
    {
        await using var subscription = await _client.SubscribeAsync(_prefix + "c", (_, _) => { });
        // Subscriber mode is on the separate connection; the command connection is unaffected.
        Assert.Equal(5, await _client.IncrByAsync(_prefix + "n", 5));
        Assert.True(_client.IsConnected);
    }
}
