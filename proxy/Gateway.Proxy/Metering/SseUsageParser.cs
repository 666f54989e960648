using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace Gateway.Proxy.Metering;

/// <summary>
/// Parses a Server-Sent Events stream on the fly and accumulates the usage it reports (OpenAI's final
/// usage chunk, Responses' response.completed, Anthropic's message_start / message_delta). Bytes can
/// arrive split anywhere, including inside an event or a line ending: incomplete events are carried
/// over in a pooled buffer until their blank line arrives.
/// <para>
/// In pass-through mode the caller forwards the raw bytes itself and passes no writer. In event mode
/// (a writer is passed) only whole events are forwarded, which lets the parser drop OpenAI's usage-only
/// chunk the client did not ask for, and hold and correct Anthropic's message_start for Claude Code.
/// </para>
/// </summary>
public sealed class SseUsageParser : IDisposable
{
    /// <summary>An event larger than this is forwarded without being parsed (protects memory).</summary>
    public const int MaxEventBytes = 4 * 1024 * 1024;
    private const int MaxHeldBytes = 1024 * 1024;

    private readonly bool _dropUsageOnlyChunks;
    private readonly bool _correctMessageStart;
    private byte[]? _pending;
    private int _pendingLength;
    private byte[]? _held;
    private int _heldLength;
    private int _heldStartLength;
    private bool _holding;
    private bool _messageStartSettled;
    private UsageAccumulator _usage = UsageAccumulator.Create();

    /// <param name="dropUsageOnlyChunks">Drop OpenAI chunks with empty choices and a usage object (event mode only).</param>
    /// <param name="correctMessageStart">Hold an Anthropic message_start whose input_tokens is 0 until the real count arrives.</param>
    public SseUsageParser(bool dropUsageOnlyChunks = false, bool correctMessageStart = false)
    {
        _dropUsageOnlyChunks = dropUsageOnlyChunks;
        _correctMessageStart = correctMessageStart;
    }

    /// <summary>Usage seen so far.</summary>
    public UsageAccumulator Usage => _usage;

    /// <summary>Number of complete events seen.</summary>
    public int EventCount { get; private set; }

    /// <summary>Events whose data was neither JSON nor [DONE]: a provider never sends them, so the stream is malformed.</summary>
    public int InvalidEventCount { get; private set; }

    /// <summary>True when the caller must forward through the parser (whole events only).</summary>
    public bool EventMode => _dropUsageOnlyChunks || _correctMessageStart;

    /// <summary>Feeds bytes read from the upstream. In event mode, forwardable events go to <paramref name="forward"/>.</summary>
    public void Feed(ReadOnlySpan<byte> data, IBufferWriter<byte>? forward)
    {
        if (data.IsEmpty) return;
        ReadOnlySpan<byte> input;
        if (_pendingLength > 0)
        {
            Append(ref _pending, ref _pendingLength, data);
            input = _pending.AsSpan(0, _pendingLength);
        }
        else input = data;

        var pos = 0;
        while (pos < input.Length)
        {
            var end = FindEventEnd(input[pos..], out var separator);
            if (end < 0) break;
            var whole = input.Slice(pos, end + separator);
            OnEvent(input.Slice(pos, end), whole, forward);
            pos += end + separator;
        }

        var rest = input[pos..];
        if (rest.Length > MaxEventBytes)
        {
            // An event this large is not usage; pass it on unparsed rather than buffering without bound.
            if (forward is not null) Emit(rest, forward);
            _pendingLength = 0;
            return;
        }
        if (_pendingLength > 0)
        {
            // input aliases _pending: move the unconsumed tail to the front.
            rest.CopyTo(_pending);
            _pendingLength = rest.Length;
        }
        else if (!rest.IsEmpty)
        {
            Append(ref _pending, ref _pendingLength, rest);
        }
    }

    /// <summary>The upstream stream ended: parses a final event without a trailing blank line and releases anything held.</summary>
    public void Complete(IBufferWriter<byte>? forward)
    {
        if (_pendingLength > 0)
        {
            var rest = _pending.AsSpan(0, _pendingLength);
            _pendingLength = 0;
            OnEvent(rest, rest, forward);
        }
        ReleaseHeld(forward);
    }

    private void OnEvent(ReadOnlySpan<byte> content, ReadOnlySpan<byte> whole, IBufferWriter<byte>? forward)
    {
        EventCount++;
        var scan = ParseData(content, out var isDone);
        if (scan.Invalid) InvalidEventCount++;
        if (forward is null) return;
        if (!isDone && _dropUsageOnlyChunks && scan.HadUsage && scan.EmptyChoices) return;
        if (_correctMessageStart && !_messageStartSettled)
        {
            if (!_holding && scan.IsMessageStart)
            {
                if (scan.InputTokens > 0) { _messageStartSettled = true; }
                else
                {
                    _holding = true;
                    Append(ref _held, ref _heldLength, whole);
                    _heldStartLength = whole.Length;
                    return;
                }
            }
            else if (_holding)
            {
                Append(ref _held, ref _heldLength, whole);
                if ((scan.HadUsage && _usage.InputTokens > 0) || _heldLength > MaxHeldBytes) ReleaseHeld(forward);
                return;
            }
        }
        Emit(whole, forward);
    }

    private ScanResult ParseData(ReadOnlySpan<byte> evt, out bool isDone)
    {
        isDone = false;
        // Collect the data lines; almost always exactly one, which is parsed in place.
        ReadOnlySpan<byte> single = default;
        byte[]? joined = null;
        var joinedLength = 0;
        var dataLines = 0;
        var rest = evt;
        while (!rest.IsEmpty)
        {
            var nl = rest.IndexOfAny((byte)'\n', (byte)'\r');
            var line = nl < 0 ? rest : rest[..nl];
            rest = nl < 0 ? default : rest[(nl + 1)..];
            if (!line.StartsWith("data:"u8)) continue;
            var value = line[5..];
            if (!value.IsEmpty && value[0] == (byte)' ') value = value[1..];
            dataLines++;
            if (dataLines == 1) { single = value; continue; }
            if (dataLines == 2) Append(ref joined, ref joinedLength, single);
            Append(ref joined, ref joinedLength, "\n"u8);
            Append(ref joined, ref joinedLength, value);
        }
        try
        {
            var data = joined is null ? single : joined.AsSpan(0, joinedLength);
            if (data.IsEmpty) return new ScanResult { InputTokens = -1 };
            if (data.SequenceEqual("[DONE]"u8)) { isDone = true; return new ScanResult { InputTokens = -1 }; }
            return UsageJsonScanner.Scan(data, ref _usage);
        }
        finally
        {
            if (joined is not null) ArrayPool<byte>.Shared.Return(joined);
        }
    }

    private void ReleaseHeld(IBufferWriter<byte>? forward)
    {
        if (!_holding) return;
        _holding = false;
        _messageStartSettled = true;
        if (forward is not null && _held is not null)
        {
            var start = _held.AsSpan(0, _heldStartLength);
            if (_usage.InputTokens > 0) WriteCorrectedMessageStart(start, _usage.InputTokens, forward);
            else Emit(start, forward);
            Emit(_held.AsSpan(_heldStartLength, _heldLength - _heldStartLength), forward);
        }
        _heldLength = 0;
    }

    /// <summary>Rewrites message.usage.input_tokens in a message_start event, keeping every other byte.</summary>
    internal static void WriteCorrectedMessageStart(ReadOnlySpan<byte> evt, long inputTokens, IBufferWriter<byte> forward)
    {
        var dataAt = evt.IndexOf("data:"u8);
        if (dataAt < 0) { Emit(evt, forward); return; }
        var jsonStart = dataAt + 5;
        if (jsonStart < evt.Length && evt[jsonStart] == (byte)' ') jsonStart++;
        var lineEnd = evt[jsonStart..].IndexOfAny((byte)'\n', (byte)'\r');
        var json = lineEnd < 0 ? evt[jsonStart..] : evt.Slice(jsonStart, lineEnd);
        if (!FindInputTokens(json, out var valueStart, out var valueLength, out var usageObjectStart))
        {
            Emit(evt, forward);
            return;
        }
        Span<byte> number = stackalloc byte[24];
        inputTokens.TryFormat(number, out var digits, default, CultureInfo.InvariantCulture);
        if (valueStart >= 0)
        {
            Emit(evt[..(jsonStart + valueStart)], forward);
            Emit(number[..digits], forward);
            Emit(evt[(jsonStart + valueStart + valueLength)..], forward);
        }
        else
        {
            var insertAt = jsonStart + usageObjectStart + 1;
            Emit(evt[..insertAt], forward);
            Emit("\"input_tokens\":"u8, forward);
            Emit(number[..digits], forward);
            // A usage object with members needs a separating comma.
            var after = evt[insertAt..];
            var firstNonSpace = after.IndexOfAnyExcept((byte)' ', (byte)'\t');
            if (firstNonSpace >= 0 && after[firstNonSpace] != (byte)'}') Emit(","u8, forward);
            Emit(after, forward);
        }
    }

    private static bool FindInputTokens(ReadOnlySpan<byte> json, out int valueStart, out int valueLength, out int usageObjectStart)
    {
        valueStart = -1; valueLength = 0; usageObjectStart = -1;
        var reader = new Utf8JsonReader(json);
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName || !reader.ValueTextEquals("usage"u8)) continue;
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject) continue;
                usageObjectStart = (int)reader.TokenStartIndex;
                var depth = reader.CurrentDepth;
                while (reader.Read())
                {
                    if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == depth) return true;
                    if (reader.TokenType != JsonTokenType.PropertyName) continue;
                    var isInput = reader.ValueTextEquals("input_tokens"u8);
                    reader.Read();
                    if (isInput && reader.TokenType == JsonTokenType.Number)
                    {
                        valueStart = (int)reader.TokenStartIndex;
                        valueLength = (int)(reader.BytesConsumed - reader.TokenStartIndex);
                        return true;
                    }
                    if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
                }
                return true;
            }
        }
        catch (JsonException)
        {
        }
        return false;
    }

    /// <summary>Index where an event's content ends (before its blank line), and the blank line's length; -1 if incomplete.</summary>
    internal static int FindEventEnd(ReadOnlySpan<byte> data, out int separatorLength)
    {
        var offset = 0;
        while (true)
        {
            var nl = data[offset..].IndexOf((byte)'\n');
            if (nl < 0) { separatorLength = 0; return -1; }
            var i = offset + nl;
            if (i + 1 < data.Length && data[i + 1] == (byte)'\n') { separatorLength = 2; return i; }
            if (i + 2 < data.Length && data[i + 1] == (byte)'\r' && data[i + 2] == (byte)'\n') { separatorLength = 3; return i; }
            if (i + 1 >= data.Length || (i + 2 >= data.Length && data[i + 1] == (byte)'\r')) { separatorLength = 0; return -1; }
            offset = i + 1;
        }
    }

    private static void Emit(ReadOnlySpan<byte> bytes, IBufferWriter<byte> forward)
    {
        if (bytes.IsEmpty) return;
        var span = forward.GetSpan(bytes.Length);
        bytes.CopyTo(span);
        forward.Advance(bytes.Length);
    }

    private static void Append(ref byte[]? buffer, ref int length, ReadOnlySpan<byte> data)
    {
        if (buffer is null || buffer.Length - length < data.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(4096, Math.Max(length + data.Length, (buffer?.Length ?? 0) * 2)));
            if (buffer is not null)
            {
                buffer.AsSpan(0, length).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(buffer);
            }
            buffer = bigger;
        }
        data.CopyTo(buffer.AsSpan(length));
        length += data.Length;
    }

    public void Dispose()
    {
        if (_pending is not null) { ArrayPool<byte>.Shared.Return(_pending); _pending = null; }
        if (_held is not null) { ArrayPool<byte>.Shared.Return(_held); _held = null; }
        _pendingLength = 0; _heldLength = 0;
    }
}
