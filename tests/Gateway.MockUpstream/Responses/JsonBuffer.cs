using System.Buffers;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.Extensions.ObjectPool;

namespace Gateway.MockUpstream.Responses;

/// <summary>A pooled buffer and JSON writer: responses are built here, then written with a Content-Length.</summary>
internal sealed class JsonBuffer
{
    // Relaxed escaping keeps text readable the way providers send it (no \u0027 for apostrophes).
    private static readonly JsonWriterOptions s_options = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly ObjectPool<JsonBuffer> s_pool =
        new DefaultObjectPool<JsonBuffer>(new Policy(), Environment.ProcessorCount * 8);

    private readonly ArrayBufferWriter<byte> _bytes = new(4096);

    private JsonBuffer() => Writer = new Utf8JsonWriter(_bytes, s_options);

    public Utf8JsonWriter Writer { get; }

    public ReadOnlyMemory<byte> WrittenMemory => _bytes.WrittenMemory;

    public int WrittenCount => _bytes.WrittenCount;

    public static JsonBuffer Rent()
    {
        var b = s_pool.Get();
        b.Reset();
        return b;
    }

    public void Return() => s_pool.Return(this);

    /// <summary>Empties the buffer and readies the writer for a new top-level value.</summary>
    public void Reset()
    {
        _bytes.ResetWrittenCount();
        Writer.Reset(_bytes);
    }

    /// <summary>Appends bytes outside the JSON value (SSE framing). Flushes the writer first so order holds.</summary>
    public void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        Writer.Flush();
        _bytes.Write(bytes);
    }

    private sealed class Policy : PooledObjectPolicy<JsonBuffer>
    {
        public override JsonBuffer Create() => new();

        // Do not keep buffers a huge response (e.g. many embeddings) grew.
        public override bool Return(JsonBuffer obj) => obj._bytes.Capacity <= 1024 * 1024;
    }
}
