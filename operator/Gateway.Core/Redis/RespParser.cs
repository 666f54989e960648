using System.Buffers;
using System.Buffers.Text;

namespace Gateway.Core.Redis;

/// <summary>
/// Incremental RESP2 reply parser over a <see cref="ReadOnlySequence{T}"/>. A reply is materialised only
/// once all its bytes are buffered; until then the parser consumes nothing, so the receive loop simply
/// keeps reading (partial replies across reads, nested arrays, large bulk strings).
/// </summary>
internal static class RespParser
{
    // Redis' own proto-max-bulk-len default; anything larger means the stream is out of sync.
    private const long MaxBulkLength = 512L * 1024 * 1024;
    private const int MaxDepth = 64;

    /// <summary>Parses one complete reply from the start of <paramref name="buffer"/> and slices it off.
    /// Returns false (buffer unchanged) when the reply is not complete yet.</summary>
    /// <exception cref="RedisConnectionException">The bytes are not valid RESP2.</exception>
    public static bool TryParse(ref ReadOnlySequence<byte> buffer, out RespValue value)
    {
        // First a non-allocating pass to find out whether the whole reply is here; a big reply that
        // arrives over many reads is re-scanned (cheap: bulk payloads are skipped by length), but
        // allocated exactly once.
        var probe = new SequenceReader<byte>(buffer);
        if (!TrySkip(ref probe, 0))
        {
            value = null!;
            return false;
        }
        var end = probe.Position;
        var reader = new SequenceReader<byte>(buffer.Slice(0, end));
        value = Read(ref reader);
        buffer = buffer.Slice(end);
        return true;
    }

    private static bool TrySkip(ref SequenceReader<byte> reader, int depth)
    {
        if (depth > MaxDepth) throw Protocol("replies nested too deeply");
        if (!reader.TryRead(out var type)) return false;
        switch (type)
        {
            case (byte)'+':
            case (byte)'-':
                return TryReadLine(ref reader, out _);
            case (byte)':':
                if (!TryReadLine(ref reader, out var line)) return false;
                ParseInteger(line);
                return true;
            case (byte)'$':
            {
                if (!TryReadLength(ref reader, MaxBulkLength, out var length)) return false;
                if (length < 0) return true;
                if (reader.Remaining < length + 2) return false;
                reader.Advance(length);
                return TryExpectCrlf(ref reader);
            }
            case (byte)'*':
            {
                if (!TryReadLength(ref reader, int.MaxValue, out var count)) return false;
                for (long i = 0; i < count; i++)
                {
                    if (!TrySkip(ref reader, depth + 1)) return false;
                }
                return true;
            }
            default:
                throw Protocol("unexpected reply type byte");
        }
    }

    // Only called on a range TrySkip has validated, so every read succeeds.
    private static RespValue Read(ref SequenceReader<byte> reader)
    {
        reader.TryRead(out var type);
        switch (type)
        {
            case (byte)'+':
            {
                TryReadLine(ref reader, out var line);
                return line.SequenceEqual("OK"u8) ? RespValue.Ok : RespValue.SimpleFromBytes(line.ToArray());
            }
            case (byte)'-':
            {
                TryReadLine(ref reader, out var line);
                return RespValue.ErrorFromBytes(line.ToArray());
            }
            case (byte)':':
            {
                TryReadLine(ref reader, out var line);
                return RespValue.IntegerCached(ParseInteger(line));
            }
            case (byte)'$':
            {
                TryReadLength(ref reader, MaxBulkLength, out var length);
                if (length < 0) return RespValue.Nil;
                var bytes = length == 0 ? [] : new byte[length];
                reader.TryCopyTo(bytes);
                reader.Advance(length + 2);
                return RespValue.Bulk(bytes);
            }
            default:
            {
                TryReadLength(ref reader, int.MaxValue, out var count);
                if (count < 0) return RespValue.Nil;
                if (count == 0) return RespValue.EmptyArray;
                var items = new RespValue[count];
                for (var i = 0; i < items.Length; i++) items[i] = Read(ref reader);
                return RespValue.Array(items);
            }
        }
    }

    private static bool TryReadLine(ref SequenceReader<byte> reader, out ReadOnlySpan<byte> line)
    {
        // Copies only when the line straddles two buffer segments, which is rare for short header lines.
        if (!reader.TryReadTo(out line, (byte)'\n')) return false;
        if (line.IsEmpty || line[^1] != (byte)'\r') throw Protocol("a line did not end with CRLF");
        line = line[..^1];
        return true;
    }

    private static bool TryReadLength(ref SequenceReader<byte> reader, long max, out long length)
    {
        if (!TryReadLine(ref reader, out var line))
        {
            length = 0;
            return false;
        }
        length = ParseInteger(line);
        if (length < -1 || length > max) throw Protocol("a length is out of range");
        return true;
    }

    private static bool TryExpectCrlf(ref SequenceReader<byte> reader)
    {
        if (!reader.TryRead(out var cr) || !reader.TryRead(out var lf)) return false;
        if (cr != (byte)'\r' || lf != (byte)'\n') throw Protocol("a bulk string did not end with CRLF");
        return true;
    }

    private static long ParseInteger(ReadOnlySpan<byte> line) =>
        Utf8Parser.TryParse(line, out long value, out var consumed) && consumed == line.Length
            ? value
            : throw Protocol("an integer is malformed");

    private static RedisConnectionException Protocol(string what) =>
        new($"Redis protocol error: {what}; the connection is being re-established.");
}
