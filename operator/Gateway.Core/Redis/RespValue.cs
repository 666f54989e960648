using System.Globalization;
using System.Text;

namespace Gateway.Core.Redis;

/// <summary>RESP2 reply types.</summary>
public enum RespType : byte
{
    SimpleString,
    Error,
    Integer,
    BulkString,
    Array,
    Null,
}

/// <summary>One RESP reply. Bulk strings keep their bytes; arrays keep their items.</summary>
public sealed class RespValue
{
    public static readonly RespValue Nil = new(RespType.Null, null, 0, null);

    private readonly byte[]? _bytes;
    private readonly long _integer;
    private readonly RespValue[]? _items;

    private RespValue(RespType type, byte[]? bytes, long integer, RespValue[]? items)
    {
        Type = type; _bytes = bytes; _integer = integer; _items = items;
    }

    public static RespValue Simple(string text) => new(RespType.SimpleString, Encoding.UTF8.GetBytes(text), 0, null);
    public static RespValue Error(string text) => new(RespType.Error, Encoding.UTF8.GetBytes(text), 0, null);
    public static RespValue Integer(long value) => new(RespType.Integer, null, value, null);
    public static RespValue Bulk(byte[] bytes) => new(RespType.BulkString, bytes, 0, null);
    public static RespValue Array(RespValue[] items) => new(RespType.Array, null, 0, items);

    // The parser builds replies straight from wire bytes; "+OK" and small integers are shared so the
    // most common replies on the hot path allocate nothing.
    internal static readonly RespValue Ok = new(RespType.SimpleString, "OK"u8.ToArray(), 0, null);
    internal static readonly RespValue EmptyArray = new(RespType.Array, null, 0, []);
    private static readonly RespValue[] SmallIntegers = CreateSmallIntegers();

    internal static RespValue SimpleFromBytes(byte[] bytes) => new(RespType.SimpleString, bytes, 0, null);
    internal static RespValue ErrorFromBytes(byte[] bytes) => new(RespType.Error, bytes, 0, null);

    internal static RespValue IntegerCached(long value) =>
        value is >= -1 and < 255 ? SmallIntegers[value + 1] : new(RespType.Integer, null, value, null);

    private static RespValue[] CreateSmallIntegers()
    {
        var values = new RespValue[256];
        for (var i = 0; i < values.Length; i++) values[i] = new(RespType.Integer, null, i - 1, null);
        return values;
    }

    public RespType Type { get; }
    public bool IsNull => Type == RespType.Null;

    /// <summary>Raw bytes of a simple or bulk string (or error text).</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Items of an array reply; empty for other types.</summary>
    public IReadOnlyList<RespValue> Items => _items ?? [];

    /// <summary>Text of a string reply, the decimal text of an integer, or null for nil.</summary>
    public string? AsString() => Type switch
    {
        RespType.Null => null,
        RespType.Integer => _integer.ToString(CultureInfo.InvariantCulture),
        RespType.Array => throw new InvalidOperationException("An array reply has no string value."),
        _ => Encoding.UTF8.GetString(_bytes!),
    };

    /// <summary>Integer reply, or a string reply holding an integer.</summary>
    public long AsInt64() => Type switch
    {
        RespType.Integer => _integer,
        RespType.SimpleString or RespType.BulkString => long.Parse(Encoding.ASCII.GetString(_bytes!), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"A {Type} reply is not an integer."),
    };

    /// <summary>True when this is a simple or bulk string whose bytes equal <paramref name="text"/> (ASCII/UTF-8).</summary>
    public bool BytesEqual(ReadOnlySpan<byte> text) =>
        Type is RespType.SimpleString or RespType.BulkString or RespType.Error && _bytes.AsSpan().SequenceEqual(text);

    public override string ToString() => Type switch
    {
        RespType.Array => "[" + string.Join(", ", Items.Select(i => i.ToString())) + "]",
        RespType.Null => "(nil)",
        _ => AsString()!,
    };
}

/// <summary>An error reply from the server (e.g. WRONGTYPE, NOSCRIPT, a Lua error).</summary>
public sealed class RedisServerException(string message) : Exception(message)
{
    /// <summary>The error prefix, e.g. "ERR", "NOSCRIPT", "WRONGTYPE".</summary>
    public string Prefix => Message.Split(' ', 2)[0];

    /// <summary>
    /// True for the errors of a server that cannot serve for now rather than of a wrong command: loading its dataset
    /// after a restart (LOADING), busy with a long script (BUSY), a replica without its master or read-only during a
    /// failover (MASTERDOWN, READONLY), a cluster resharding or down (TRYAGAIN, CLUSTERDOWN), a failed save blocking
    /// writes (MISCONF). Callers treat them like an unreachable Redis.
    /// </summary>
    public bool IsTransient => HasPrefix("LOADING") || HasPrefix("BUSY") || HasPrefix("MASTERDOWN") || HasPrefix("READONLY")
        || HasPrefix("TRYAGAIN") || HasPrefix("CLUSTERDOWN") || HasPrefix("MISCONF");

    /// <summary>True when the error starts with <paramref name="prefix"/> (e.g. "NOSCRIPT", "BUSYGROUP").</summary>
    public bool HasPrefix(string prefix) =>
        Message.StartsWith(prefix, StringComparison.Ordinal) && (Message.Length == prefix.Length || Message[prefix.Length] == ' ');
}

/// <summary>The server cannot be reached or the connection broke before a reply arrived.</summary>
public sealed class RedisConnectionException(string message, Exception? inner = null) : Exception(message, inner);
