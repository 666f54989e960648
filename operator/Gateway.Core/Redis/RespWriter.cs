using System.Buffers;
using System.Globalization;
using System.Text;

namespace Gateway.Core.Redis;

/// <summary>Writes commands as RESP arrays of bulk strings straight into the output buffer (no
/// intermediate strings or arrays per command).</summary>
internal static class RespWriter
{
    // '*' or '$', up to 20 digits for a long, CRLF.
    private const int MaxHeaderLength = 1 + 20 + 2;

    /// <summary>Writes <c>command head... first... second...</c> as one command.</summary>
    public static void WriteCommand(
        IBufferWriter<byte> writer,
        string command,
        ReadOnlySpan<RedisArg> head,
        IReadOnlyList<RedisArg>? first,
        IReadOnlyList<RedisArg>? second)
    {
        var count = 1 + head.Length + (first?.Count ?? 0) + (second?.Count ?? 0);
        WriteHeader(writer, (byte)'*', count);
        WriteText(writer, command);
        foreach (var arg in head) WriteArg(writer, arg);
        WriteArgs(writer, first);
        WriteArgs(writer, second);
    }

    private static void WriteArgs(IBufferWriter<byte> writer, IReadOnlyList<RedisArg>? args)
    {
        switch (args)
        {
            case null:
                return;
            // The common containers without an interface call per argument.
            case RedisArg[] array:
                foreach (var arg in array) WriteArg(writer, arg);
                return;
            case RedisArgBuffer buffer:
                foreach (var arg in buffer.AsSpan()) WriteArg(writer, arg);
                return;
            default:
                for (var i = 0; i < args.Count; i++) WriteArg(writer, args[i]);
                return;
        }
    }

    private static void WriteText(IBufferWriter<byte> writer, string text)
    {
        var length = Encoding.UTF8.GetByteCount(text);
        var span = writer.GetSpan(MaxHeaderLength + length + 2);
        var n = WriteHeader(span, (byte)'$', length);
        n += Encoding.UTF8.GetBytes(text, span[n..]);
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        writer.Advance(n);
    }

    private static void WriteArg(IBufferWriter<byte> writer, in RedisArg arg)
    {
        var length = arg.ByteCount;
        var span = writer.GetSpan(MaxHeaderLength + length + 2);
        var n = WriteHeader(span, (byte)'$', length);
        n += arg.WriteTo(span[n..]);
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        writer.Advance(n);
    }

    private static void WriteHeader(IBufferWriter<byte> writer, byte prefix, long value)
    {
        var span = writer.GetSpan(MaxHeaderLength);
        writer.Advance(WriteHeader(span, prefix, value));
    }

    private static int WriteHeader(Span<byte> span, byte prefix, long value)
    {
        span[0] = prefix;
        value.TryFormat(span[1..], out var written, default, CultureInfo.InvariantCulture);
        span[written + 1] = (byte)'\r';
        span[written + 2] = (byte)'\n';
        return written + 3;
    }
}
