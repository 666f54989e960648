using System.Buffers;
using System.Text;

namespace Gateway.Core.Redis.Cluster;

/// <summary>
/// The Redis Cluster hash slot of a key: CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key's
/// UTF-8 bytes modulo 16384, or of its hash tag — the bytes between the first <c>{</c> and the next
/// <c>}</c> when there are any — so keys sharing a tag (<c>{user1000}.following</c>, <c>{user1000}.followers</c>)
/// live in the same slot and one Lua script may touch them all.
/// </summary>
public static class RedisKeySlot
{
    /// <summary>Number of hash slots in a Redis Cluster.</summary>
    public const int Count = 16384;

    private static readonly ushort[] Table = CreateTable();

    /// <summary>The slot of <paramref name="key"/> (UTF-8 encoded, as the client sends it).</summary>
    public static int Of(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var length = Encoding.UTF8.GetByteCount(key);
        byte[]? rented = null;
        Span<byte> bytes = length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = Encoding.UTF8.GetBytes(key, bytes);
            return Of(bytes[..written]);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The slot of a key given as an argument (text, integer or bytes).</summary>
    public static int Of(in RedisArg key)
    {
        var length = key.ByteCount;
        byte[]? rented = null;
        Span<byte> bytes = length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(length));
        try
        {
            var written = key.WriteTo(bytes);
            return Of(bytes[..written]);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The slot of a key given as raw bytes.</summary>
    public static int Of(ReadOnlySpan<byte> key)
    {
        var (start, length) = Hashed(key, (byte)'{', (byte)'}');
        return Crc16(key.Slice(start, length)) & (Count - 1);
    }

    /// <summary>The part of <paramref name="key"/> Redis Cluster hashes: its hash tag, or the whole key without one.</summary>
    public static string HashTag(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var (start, length) = Hashed(key.AsSpan(), '{', '}');
        return length == key.Length ? key : key.Substring(start, length);
    }

    // The text between the first '{' and the next '}' when it is not empty, else the whole key ("{}" does not count).
    // Both braces are ASCII, so the same positions hold for a key's chars and its UTF-8 bytes.
    private static (int Start, int Length) Hashed<T>(ReadOnlySpan<T> key, T open, T close) where T : IEquatable<T>
    {
        var at = key.IndexOf(open);
        if (at >= 0)
        {
            var end = key[(at + 1)..].IndexOf(close);
            if (end > 0) return (at + 1, end);
        }
        return (0, key.Length);
    }

    /// <summary>CRC16/XMODEM (polynomial 0x1021, initial value 0, no reflection), as Redis Cluster uses it.</summary>
    public static ushort Crc16(ReadOnlySpan<byte> data)
    {
        ushort crc = 0;
        foreach (var b in data) crc = (ushort)((crc << 8) ^ Table[((crc >> 8) ^ b) & 0xFF]);
        return crc;
    }

    private static ushort[] CreateTable()
    {
        var table = new ushort[256];
        for (var i = 0; i < 256; i++)
        {
            var crc = (ushort)(i << 8);
            for (var bit = 0; bit < 8; bit++) crc = (ushort)((crc & 0x8000) != 0 ? (crc << 1) ^ 0x1021 : crc << 1);
            table[i] = crc;
        }
        return table;
    }
}
