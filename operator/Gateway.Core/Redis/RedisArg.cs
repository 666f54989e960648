using System.Globalization;
using System.Text;

namespace Gateway.Core.Redis;

/// <summary>One command argument: text, an integer or raw bytes, written as a RESP bulk string.</summary>
public readonly struct RedisArg
{
    private readonly string? _text;
    private readonly ReadOnlyMemory<byte> _bytes;
    private readonly long _integer;
    private readonly byte _kind; // 0 text, 1 bytes, 2 integer

    private RedisArg(string? text, ReadOnlyMemory<byte> bytes, long integer, byte kind)
    {
        _text = text; _bytes = bytes; _integer = integer; _kind = kind;
    }

    public static implicit operator RedisArg(string value) => new(value ?? "", default, 0, 0);
    public static implicit operator RedisArg(long value) => new(null, default, value, 2);
    public static implicit operator RedisArg(int value) => new(null, default, value, 2);
    public static implicit operator RedisArg(byte[] value) => new(null, value, 0, 1);
    public static implicit operator RedisArg(ReadOnlyMemory<byte> value) => new(null, value, 0, 1);

    public static RedisArg FromString(string value) => value;
    public static RedisArg FromInt64(long value) => value;
    public static RedisArg FromBytes(ReadOnlyMemory<byte> value) => value;

    /// <summary>Number of bytes this argument occupies as bulk-string payload.</summary>
    public int ByteCount => _kind switch
    {
        0 => Encoding.UTF8.GetByteCount(_text!),
        1 => _bytes.Length,
        _ => CountDigits(_integer),
    };

    /// <summary>Writes the payload bytes; <paramref name="destination"/> must hold <see cref="ByteCount"/> bytes.</summary>
    public int WriteTo(Span<byte> destination)
    {
        switch (_kind)
        {
            case 0: return Encoding.UTF8.GetBytes(_text!, destination);
            case 1: _bytes.Span.CopyTo(destination); return _bytes.Length;
            default:
                _integer.TryFormat(destination, out var written, default, CultureInfo.InvariantCulture);
                return written;
        }
    }

    public override string ToString() => _kind switch
    {
        0 => _text!,
        1 => Encoding.UTF8.GetString(_bytes.Span),
        _ => _integer.ToString(CultureInfo.InvariantCulture),
    };

    private static int CountDigits(long v)
    {
        Span<byte> tmp = stackalloc byte[24];
        v.TryFormat(tmp, out var n, default, CultureInfo.InvariantCulture);
        return n;
    }
}
