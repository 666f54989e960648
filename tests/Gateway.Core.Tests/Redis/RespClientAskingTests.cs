using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis;

/// <summary>The "ASKING + command" pair Redis Cluster's ASK redirection needs, on a plain server: the ASKING reply
/// (here an error, as the server is not a cluster node) is consumed without disturbing reply matching.</summary>
public sealed class RespClientAskingTests : IAsyncLifetime
{
    private readonly string _prefix = TestEnvironment.UniqueRedisPrefix();
    private RespClient _client = null!;

    public async Task InitializeAsync() => _client = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task The_ASKING_reply_is_discarded_and_every_caller_gets_its_own_reply()
    {
        var key = _prefix + "k";
        await _client.SetAsync(key, "v");

        // Interleaved with ordinary commands of other callers on the same multiplexed connection.
        var asked = new List<Task<RespValue>>();
        var plain = new List<Task<RespValue>>();
        for (var i = 0; i < 200; i++)
        {
            asked.Add(_client.SendAsking("ECHO", [], ["a" + i], null, TimeSpan.Zero, default));
            plain.Add(_client.ExecuteAsync("GET", [key]));
        }
        var askedReplies = await Task.WhenAll(asked);
        var plainReplies = await Task.WhenAll(plain);

        for (var i = 0; i < 200; i++) Assert.Equal("a" + i, askedReplies[i].AsString());
        Assert.All(plainReplies, r => Assert.Equal("v", r.AsString()));
        Assert.Equal("v", await _client.GetAsync(key));
    }
}
