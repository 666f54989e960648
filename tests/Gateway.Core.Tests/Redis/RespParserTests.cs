using System.Buffers;
using System.Text;
using Gateway.Core.Redis;

namespace Gateway.Core.Tests.Redis;

public sealed class RespParserTests
{
    // Wire bytes and the expected reply, rendered by Describe.
    public static TheoryData<string, string> Replies => new()
    {
        { "+OK\r\n", "simple(OK)" },
        { "+PONG\r\n", "simple(PONG)" },
        { "+\r\n", "simple()" },
        { "-ERR something went wrong\r\n", "error(ERR something went wrong)" },
        { ":0\r\n", "int(0)" },
        { ":-1\r\n", "int(-1)" },
        { ":1000\r\n", "int(1000)" },
        { ":9223372036854775807\r\n", "int(9223372036854775807)" },
        { ":-9223372036854775808\r\n", "int(-9223372036854775808)" },
        { "$5\r\nhello\r\n", "bulk(hello)" },
        { "$0\r\n\r\n", "bulk()" },
        { "$-1\r\n", "nil" },
        { "*-1\r\n", "nil" },
        { "*0\r\n", "[]" },
        { "$6\r\na\r\nb\r\n\r\n", "bulk(a\r\nb\r\n)" },
        { "$5\r\nh\u00e9\u00e9\r\n", "bulk(h\u00e9\u00e9)" },
        { "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n", "[int(1), [bulk(a), nil], simple(x)]" },
        { "*2\r\n*0\r\n*-1\r\n", "[[], nil]" },
        { "*2\r\n-WRONGTYPE nested\r\n:7\r\n", "[error(WRONGTYPE nested), int(7)]" },
        { "*1\r\n*1\r\n*1\r\n*1\r\n$3\r\nabc\r\n", "[[[[bulk(abc)]]]]" },
    };

    [Theory]
    [MemberData(nameof(Replies))]
    public void Parses_a_reply_split_at_every_byte_offset(string wire, string expected)
    {
        var bytes = Encoding.UTF8.GetBytes(wire);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var buffer = TwoSegments(bytes, split);
            Assert.True(RespParser.TryParse(ref buffer, out var value), $"complete reply not parsed (split at {split})");
            Assert.Equal(expected, Describe(value));
            Assert.True(buffer.IsEmpty, $"bytes left over (split at {split})");
        }
    }

    [Theory]
    [MemberData(nameof(Replies))]
    public void Consumes_nothing_until_the_reply_is_complete(string wire, string expected)
    {
        _ = expected;
        var bytes = Encoding.UTF8.GetBytes(wire);
        for (var length = 0; length < bytes.Length; length++)
        {
            // The incomplete prefix itself split in two, as it would arrive over two reads.
            var buffer = TwoSegments(bytes.AsSpan(0, length).ToArray(), length / 2);
            var before = buffer;
            Assert.False(RespParser.TryParse(ref buffer, out _), $"parsed from only {length} of {bytes.Length} bytes");
            Assert.Equal(before.Length, buffer.Length);
        }
    }

    [Fact]
    public void Parses_back_to_back_replies_delivered_one_byte_per_segment()
    {
        var wires = new List<string>();
        var expected = new List<string>();
        foreach (var row in Replies)
        {
            wires.Add((string)row[0]);
            expected.Add((string)row[1]);
        }
        var buffer = OneBytePerSegment(Encoding.UTF8.GetBytes(string.Concat(wires)));

        var parsed = new List<string>();
        while (RespParser.TryParse(ref buffer, out var value)) parsed.Add(Describe(value));

        Assert.Equal(expected, parsed);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Parses_a_large_bulk_string_arriving_in_many_pieces()
    {
        var payload = new byte[300_000];
        new Random(7).NextBytes(payload);
        var wire = Encoding.ASCII.GetBytes($"${payload.Length}\r\n").Concat(payload).Concat("\r\n"u8.ToArray()).ToArray();

        // Feed it in 4 KiB reads, as a socket would, keeping the unconsumed remainder each time.
        var received = 0;
        RespValue? value = null;
        while (value is null)
        {
            received = Math.Min(received + 4096, wire.Length);
            var buffer = TwoSegments(wire.AsSpan(0, received).ToArray(), received / 3);
            if (RespParser.TryParse(ref buffer, out var parsed))
            {
                value = parsed;
                Assert.True(buffer.IsEmpty);
            }
        }

        Assert.Equal(wire.Length, received);
        Assert.Equal(RespType.BulkString, value.Type);
        Assert.True(value.Bytes.SequenceEqual(payload));
    }

    [Theory]
    [InlineData("?what\r\n")]
    [InlineData(":12x\r\n")]
    [InlineData("$3\r\nabcXY")]
    [InlineData("$-2\r\n")]
    [InlineData("+OK\n")]
    public void Rejects_bytes_that_are_not_resp(string wire)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(wire));
        Assert.Throws<RedisConnectionException>(() => RespParser.TryParse(ref buffer, out _));
    }

    internal static string Describe(RespValue value) => value.Type switch
    {
        RespType.SimpleString => $"simple({value.AsString()})",
        RespType.Error => $"error({value.AsString()})",
        RespType.Integer => $"int({value.AsInt64()})",
        RespType.BulkString => $"bulk({value.AsString()})",
        RespType.Null => "nil",
        _ => "[" + string.Join(", ", value.Items.Select(Describe)) + "]",
    };

    private static ReadOnlySequence<byte> TwoSegments(byte[] bytes, int split)
    {
        if (split == 0 || split == bytes.Length) return new ReadOnlySequence<byte>(bytes);
        var first = new Segment(bytes.AsMemory(0, split).ToArray(), 0);
        var last = first.Append(bytes.AsMemory(split).ToArray());
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private static ReadOnlySequence<byte> OneBytePerSegment(byte[] bytes)
    {
        var first = new Segment(new[] { bytes[0] }, 0);
        var last = first;
        for (var i = 1; i < bytes.Length; i++) last = last.Append(new[] { bytes[i] });
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
