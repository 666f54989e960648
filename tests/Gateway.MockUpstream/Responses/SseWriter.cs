using System.Text.Json;
using Gateway.MockUpstream.Requests;

namespace Gateway.MockUpstream.Responses;

/// <summary>
/// Writes server-sent events, applying the request's stream controls: delay between events,
/// each event split mid-JSON into two flushes, and cutting the connection after two events.
/// </summary>
internal sealed class SseWriter
{
    public const string ContentType = "text/event-stream; charset=utf-8";

    // Events sent before x-mock-fault: cut aborts the connection.
    private const int EventsBeforeCut = 2;

    private readonly HttpContext _context;
    private readonly MockControls _controls;
    private readonly JsonBuffer _buffer;
    // Set for a cut HTTP/1.x stream: the whole response then bypasses Kestrel (see RawCutResponse).
    private readonly RawCutResponse? _raw;
    private int _sent;

    public SseWriter(HttpContext context, in MockControls controls, JsonBuffer buffer)
    {
        _context = context;
        _controls = controls;
        _buffer = buffer;
        if (controls.Fault == MockFault.Cut) _raw = RawCutResponse.TryCreate(context);
        if (_raw is not null) return;
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        response.Headers.CacheControl = "no-cache";
    }

    /// <summary>Starts an event: <paramref name="prefix"/> is its framing up to the JSON ("event: x\ndata: ").</summary>
    public Utf8JsonWriter Begin(ReadOnlySpan<byte> prefix)
    {
        _buffer.Reset();
        _buffer.WriteRaw(prefix);
        return _buffer.Writer;
    }

    /// <summary>Sends the event started with <see cref="Begin"/>.</summary>
    public Task SendAsync()
    {
        _buffer.WriteRaw("\n\n"u8);
        return FlushEventAsync(_buffer.WrittenMemory);
    }

    /// <summary>Sends a whole pre-framed event (e.g. "data: [DONE]\n\n").</summary>
    public Task SendRawAsync(ReadOnlySpan<byte> wholeEvent)
    {
        _buffer.Reset();
        _buffer.WriteRaw(wholeEvent);
        return FlushEventAsync(_buffer.WrittenMemory);
    }

    private async Task FlushEventAsync(ReadOnlyMemory<byte> bytes)
    {
        var ct = _context.RequestAborted;
        if (_sent > 0 && _controls.ChunkDelayMs > 0) await Task.Delay(_controls.ChunkDelayMs, ct);
        if (_raw is not null) await _raw.SendHeadAsync(StatusCodes.Status200OK, ContentType);
        if (_controls.SplitEvents && bytes.Length > 1)
        {
            var split = SplitPoint(bytes.Span);
            await WriteAsync(bytes[..split], ct);
            // The pause (chunk delay) between halves makes the split visible as separate reads.
            if (_controls.ChunkDelayMs > 0) await Task.Delay(_controls.ChunkDelayMs, ct);
            await WriteAsync(bytes[split..], ct);
        }
        else
        {
            await WriteAsync(bytes, ct);
        }
        _sent++;
        if (_controls.Fault == MockFault.Cut && _sent >= EventsBeforeCut)
        {
            if (_raw is not null) await _raw.CutAsync();
            else _context.Abort();
            throw new StreamCutException();
        }
    }

    private async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct)
    {
        if (_raw is not null) await _raw.SendChunkAsync(bytes);
        else await _context.Response.BodyWriter.WriteAsync(bytes, ct);
    }

    // Middle of the JSON payload (after "data: "), so the split always lands inside the JSON.
    private static int SplitPoint(ReadOnlySpan<byte> bytes)
    {
        var data = bytes.IndexOf("data: "u8);
        var start = data < 0 ? 0 : data + 6;
        return Math.Clamp(start + (bytes.Length - start) / 2, 1, bytes.Length - 1);
    }
}

/// <summary>Thrown after a stream was cut on purpose, to unwind the endpoint without writing more.</summary>
internal sealed class StreamCutException : Exception
{
    public StreamCutException() : base("The stream was cut by x-mock-fault: cut.") { }
}
