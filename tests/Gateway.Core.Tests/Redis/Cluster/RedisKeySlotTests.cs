using System.Text;
using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;
using Gateway.Testing;

namespace Gateway.Core.Tests.Redis.Cluster;

[Collection(RedisClusterCollection.Name)]
public sealed class RedisKeySlotTests(RedisClusterFixture fixture)
{
    [Fact]
    public void Crc16_matches_the_xmodem_check_value() =>
        Assert.Equal(0x31C3, RedisKeySlot.Crc16("123456789"u8));

    [Fact]
    public void Keys_with_the_same_hash_tag_share_a_slot()
    {
        Assert.Equal(RedisKeySlot.Of("{user1000}.following"), RedisKeySlot.Of("{user1000}.followers"));
        Assert.Equal(RedisKeySlot.Of("user1000"), RedisKeySlot.Of("{user1000}.following"));
        Assert.Equal(0x31C3 % 16384, RedisKeySlot.Of("123456789"));
    }

    [Fact]
    public void An_empty_tag_hashes_the_whole_key_and_only_the_first_braces_count()
    {
        Assert.Equal(RedisKeySlot.Crc16("foo{}{bar}"u8) % 16384, RedisKeySlot.Of("foo{}{bar}"));
        Assert.NotEqual(RedisKeySlot.Of("bar"), RedisKeySlot.Of("foo{}{bar}"));
        Assert.Equal(RedisKeySlot.Of("{bar"), RedisKeySlot.Of("foo{{bar}}zap"));
        Assert.Equal(RedisKeySlot.Of("b"), RedisKeySlot.Of("a{b}c{d}"));
    }

    [Fact]
    public void Arguments_hash_like_their_text()
    {
        Assert.Equal(RedisKeySlot.Of("12345"), RedisKeySlot.Of(new RedisArg[] { 12345L }[0]));
        Assert.Equal(RedisKeySlot.Of("k{é}"), RedisKeySlot.Of((RedisArg)Encoding.UTF8.GetBytes("k{é}")));
        var longKey = new string('x', 1000) + "{tag}";
        Assert.Equal(RedisKeySlot.Of("tag"), RedisKeySlot.Of((RedisArg)longKey));
    }

    [Fact]
    public async Task Slots_match_what_the_server_computes()
    {
        var server = fixture.Cluster.Client(0);
        var random = new Random(20261207);
        string[] fixedKeys = ["123456789", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "", "{", "}{", "{}", "a{b}c{d}",
            "tg:{u:42}:balance", "ünïcödé{ß}", "emoji😀key", new string('y', 700)];
        var keys = fixedKeys.Concat(Enumerable.Range(0, 200).Select(_ => RandomKey(random))).ToList();
        foreach (var key in keys)
        {
            var expected = (await server.ExecuteAsync("CLUSTER", ["KEYSLOT", key])).AsInt64();
            Assert.True(expected == RedisKeySlot.Of(key), $"slot of \"{key}\": server {expected}, client {RedisKeySlot.Of(key)}");
        }
    }

    private static string RandomKey(Random random)
    {
        const string alphabet = "abcxyz019:{}-_ é";
        var chars = new char[random.Next(1, 24)];
        for (var i = 0; i < chars.Length; i++) chars[i] = alphabet[random.Next(alphabet.Length)];
        return new string(chars);
    }
}
