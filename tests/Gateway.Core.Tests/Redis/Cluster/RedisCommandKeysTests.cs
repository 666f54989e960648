using Gateway.Core.Redis;
using Gateway.Core.Redis.Cluster;

namespace Gateway.Core.Tests.Redis.Cluster;

public sealed class RedisCommandKeysTests
{
    [Fact]
    public void The_first_argument_is_the_key_by_default()
    {
        Assert.Equal(new KeyPositions(0, 1, 1), RedisCommandKeys.Find("GET", ["k"]));
        Assert.Equal(new KeyPositions(0, 1, 1), RedisCommandKeys.Find("hset", ["k", "f", "v"]));
        Assert.Equal(new KeyPositions(0, 1, 1), RedisCommandKeys.Find("XADD", ["s", "*", "f", "v"]));
    }

    [Theory]
    [InlineData("PING")]
    [InlineData("TIME")]
    [InlineData("INFO")]
    [InlineData("PUBLISH")]
    [InlineData("SCRIPT")]
    [InlineData("CLUSTER")]
    [InlineData("config")]
    [InlineData("CLIENT")]
    [InlineData("DBSIZE")]
    [InlineData("FLUSHALL")]
    [InlineData("FLUSHDB")]
    [InlineData("SCAN")]
    [InlineData("KEYS")]
    [InlineData("ECHO")]
    [InlineData("ASKING")]
    [InlineData("MEMORY")]
    [InlineData("SLOWLOG")]
    public void Keyless_commands_have_no_keys(string command)
    {
        Assert.True(RedisCommandKeys.Find(command, ["a", "b"]).IsEmpty);
        Assert.Equal(-1, RedisCommandKeys.SlotOf(command, ["a", "b"]));
        Assert.True(RedisCommandKeys.IsKeyless(command));
    }

    [Fact]
    public void Multi_key_commands_list_all_their_keys()
    {
        foreach (var command in new[] { "MGET", "DEL", "UNLINK", "EXISTS", "TOUCH" })
            Assert.Equal(new KeyPositions(0, 3, 1), RedisCommandKeys.Find(command, ["a", "b", "c"]));
        Assert.Equal(new KeyPositions(0, 2, 2), RedisCommandKeys.Find("MSET", ["a", "1", "b", "2"]));
        Assert.Equal(new KeyPositions(0, 2, 2), RedisCommandKeys.Find("MSETNX", ["a", "1", "b", "2"]));
    }

    [Fact]
    public void Stream_reads_take_the_first_half_after_STREAMS()
    {
        Assert.Equal(new KeyPositions(3, 2, 1), RedisCommandKeys.Find("XREAD", ["COUNT", 10, "STREAMS", "s1", "s2", "0", "0"]));
        Assert.Equal(new KeyPositions(8, 1, 1),
            RedisCommandKeys.Find("XREADGROUP", ["GROUP", "g", "c", "COUNT", 1, "BLOCK", 100, "streams", "s", ">"]));
    }

    [Fact]
    public void Subcommands_take_argument_one()
    {
        Assert.Equal(new KeyPositions(1, 1, 1), RedisCommandKeys.Find("XGROUP", ["CREATE", "s", "g", "$", "MKSTREAM"]));
        Assert.Equal(new KeyPositions(1, 1, 1), RedisCommandKeys.Find("XINFO", ["STREAM", "s"]));
        Assert.Equal(new KeyPositions(1, 1, 1), RedisCommandKeys.Find("OBJECT", ["ENCODING", "k"]));
        Assert.True(RedisCommandKeys.Find("XINFO", ["HELP"]).IsEmpty);
    }

    [Fact]
    public void Eval_keys_are_the_numkeys_arguments_after_the_script()
    {
        Assert.Equal(new KeyPositions(2, 2, 1), RedisCommandKeys.Find("EVALSHA", ["sha", 2, "k1", "k2", "a1"]));
        Assert.True(RedisCommandKeys.Find("EVAL", ["return 1", 0]).IsEmpty);
    }

    [Fact]
    public void Keys_of_one_hash_tag_give_their_slot_and_keys_of_different_slots_are_refused()
    {
        Assert.Equal(RedisKeySlot.Of("u1"), RedisCommandKeys.SlotOf("MGET", ["{u1}a", "{u1}b"]));
        Assert.Equal(RedisKeySlot.Of("u1"), RedisCommandKeys.SlotOf("MSET", ["{u1}a", "{u2}value-is-not-a-key", "{u1}b", "x"]));
        var error = Assert.Throws<RedisServerException>(() => RedisCommandKeys.SlotOf("DEL", ["{u1}a", "{u2}b"]));
        Assert.Equal("CROSSSLOT Keys in request don't hash to the same slot", error.Message);
        Assert.Throws<RedisServerException>(() => RedisCommandKeys.SlotOfKeys(["{u1}a", "{u2}b"]));
        Assert.Equal(-1, RedisCommandKeys.SlotOfKeys([]));
    }
}
