using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using Gateway.Core.Redis;

namespace Gateway.Core.Tests.Redis;

public sealed class RedisArgTests
{
    [Fact]
    public void Is_two_words_so_commands_with_dozens_of_arguments_stay_small() => Assert.Equal(16, Unsafe.SizeOf<RedisArg>());

    [Theory]
    [InlineData(0L)]
    [InlineData(7L)]
    [InlineData(10L)]
    [InlineData(-1L)]
    [InlineData(-10L)]
    [InlineData(999_999_999_999L)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void Writes_integers_as_their_decimal_text(long value)
    {
        RedisArg arg = value;
        var text = value.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(text.Length, arg.ByteCount);
        Assert.Equal(text, Written(arg));
        Assert.Equal(text, arg.ToString());
    }

    [Fact]
    public void Writes_text_bytes_and_slices_of_arrays()
    {
        Assert.Equal("k\u00e9y", Written("k\u00e9y"));
        Assert.Equal("", Written((string)null!));
        Assert.Equal("abc", Written(Encoding.UTF8.GetBytes("abc")));
        var slice = new ReadOnlyMemory<byte>(Encoding.UTF8.GetBytes("0123456789"), 3, 4);
        RedisArg arg = slice;
        Assert.Equal(4, arg.ByteCount);
        Assert.Equal("3456", Written(arg));
        Assert.Equal("3456", arg.ToString());
        Assert.Equal("", Written(ReadOnlyMemory<byte>.Empty));
    }

    [Fact]
    public void Writes_memory_that_is_not_backed_by_an_array()
    {
        using var owner = new NativeMemory(Encoding.UTF8.GetBytes("native"));
        RedisArg arg = (ReadOnlyMemory<byte>)owner.Memory.Slice(1, 4);
        Assert.Equal("ativ", Written(arg));
        Assert.Equal("ativ", arg.ToString());
    }

    [Fact]
    public void The_default_argument_is_the_integer_zero() => Assert.Equal("0", Written(default));

    [Fact]
    public void A_rented_buffer_is_written_like_an_array_and_comes_back_empty()
    {
        var buffer = RedisArgBuffer.Rent();
        for (var i = 0; i < 40; i++) buffer.Add(i);
        buffer.AddRange(["x", 41L]);
        Assert.Equal(42, buffer.Count);
        Assert.Equal("x", buffer[40].ToString());
        Assert.Throws<ArgumentOutOfRangeException>(() => buffer[42]);

        var fromBuffer = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(fromBuffer, "RPUSH", ["k"], buffer, null);
        var fromArray = new ArrayBufferWriter<byte>();
        RespWriter.WriteCommand(fromArray, "RPUSH", ["k"], buffer.ToArray(), null);
        Assert.Equal(fromArray.WrittenSpan.ToArray(), fromBuffer.WrittenSpan.ToArray());

        RedisArgBuffer.Return(buffer);
        Assert.Empty(buffer);
    }

    private static string Written(RedisArg arg)
    {
        var bytes = new byte[arg.ByteCount];
        Assert.Equal(bytes.Length, arg.WriteTo(bytes));
        return Encoding.UTF8.GetString(bytes);
    }

    // A MemoryManager does not expose an array (TryGetArray is false), like pooled native memory.
    private sealed class NativeMemory(byte[] content) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => content;
        public override MemoryHandle Pin(int elementIndex = 0) => throw new NotSupportedException();
        public override void Unpin() { }
        protected override void Dispose(bool disposing) { }
    }
}
