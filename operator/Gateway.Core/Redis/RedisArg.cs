using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Gateway.Core.Redis;

/// <summary>One command argument: text, an integer or raw bytes, written as a RESP bulk string.</summary>
/// <remarks>
/// 16 bytes (one reference and one long) because commands carry dozens of them: the reference says what
/// the argument is — null for an integer (the long is the value), a string, a byte[] (the long packs the
/// segment's offset and length), or a box around any other memory (rare). The default value is the integer 0.
/// </remarks>
public readonly struct RedisArg
{
    private readonly object? _ref;
    private readonly long _value;

    private RedisArg(object? reference, long value)
    {
        _ref = reference; _value = value;
    }

    public static implicit operator RedisArg(string value) => new(value ?? "", 0);
    public static implicit operator RedisArg(long value) => new(null, value);
    public static implicit operator RedisArg(int value) => new(null, value);
    public static implicit operator RedisArg(byte[] value) => value is null ? new(Array.Empty<byte>(), 0) : new(value, value.Length);

    public static implicit operator RedisArg(ReadOnlyMemory<byte> value)
    {
        if (MemoryMarshal.TryGetArray(value, out var segment))
            return new(segment.Array ?? Array.Empty<byte>(), ((long)segment.Offset << 32) | (uint)segment.Count);
        return new(new MemoryBox(value), 0);
    }

    public static RedisArg FromString(string value) => value;
    public static RedisArg FromInt64(long value) => value;
    public static RedisArg FromBytes(ReadOnlyMemory<byte> value) => value;

    /// <summary>Number of bytes this argument occupies as bulk-string payload.</summary>
    public int ByteCount => _ref switch
    {
        null => CountDigits(_value),
        string text => Encoding.UTF8.GetByteCount(text),
        byte[] => (int)(uint)_value,
        _ => ((MemoryBox)_ref).Memory.Length,
    };

    /// <summary>Writes the payload bytes; <paramref name="destination"/> must hold <see cref="ByteCount"/> bytes.</summary>
    public int WriteTo(Span<byte> destination)
    {
        switch (_ref)
        {
            case null:
                _value.TryFormat(destination, out var written, default, CultureInfo.InvariantCulture);
                return written;
            case string text:
                return Encoding.UTF8.GetBytes(text, destination);
            case byte[] array:
            {
                var bytes = array.AsSpan((int)(_value >> 32), (int)(uint)_value);
                bytes.CopyTo(destination);
                return bytes.Length;
            }
            default:
            {
                var bytes = ((MemoryBox)_ref).Memory.Span;
                bytes.CopyTo(destination);
                return bytes.Length;
            }
        }
    }

    public override string ToString() => _ref switch
    {
        null => _value.ToString(CultureInfo.InvariantCulture),
        string text => text,
        byte[] array => Encoding.UTF8.GetString(array, (int)(_value >> 32), (int)(uint)_value),
        _ => Encoding.UTF8.GetString(((MemoryBox)_ref).Memory.Span),
    };

    private static int CountDigits(long v)
    {
        if (v < 0) return v == long.MinValue ? 20 : 1 + CountDigits(-v);
        var n = 1;
        while (v >= 10)
        {
            v /= 10;
            n++;
        }
        return n;
    }

    // Memory not backed by an array (a MemoryManager); boxed so the struct stays two words.
    private sealed class MemoryBox(ReadOnlyMemory<byte> memory)
    {
        public ReadOnlyMemory<byte> Memory { get; } = memory;
    }
}
