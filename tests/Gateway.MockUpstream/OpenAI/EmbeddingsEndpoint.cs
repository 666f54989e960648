using System.Buffers.Binary;
using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;
using static Gateway.MockUpstream.OpenAI.OpenAIJson;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>POST /v1/embeddings (also the Azure deployment route): one deterministic vector per input.</summary>
internal static class EmbeddingsEndpoint
{
    /// <summary>Vector length when the request has no "dimensions" (text-embedding-3-small's).</summary>
    public const int DefaultDimensions = 1536;
    private const int MaxDimensions = 8192;

    private static readonly JsonEncodedText s_list = JsonEncodedText.Encode("list");
    private static readonly JsonEncodedText s_embeddingType = JsonEncodedText.Encode("embedding");
    private static readonly JsonEncodedText s_data = JsonEncodedText.Encode("data");

    // Values are multiples of 1/64 so they print short and round-trip exactly; vector i starts at
    // offset i, so inputs get different vectors.
    private static readonly float[] s_cycle = [.. Enumerable.Range(0, 17).Select(k => (k - 8) / 64f)];

    /// <summary>Component <paramref name="j"/> of the vector for input <paramref name="index"/>.</summary>
    public static float Component(int index, int j) => s_cycle[(j + index) % s_cycle.Length];

    public static async Task HandleAsync(MockCall call)
    {
        var dims = Math.Min(call.Request.Dimensions ?? DefaultDimensions, MaxDimensions);
        var items = Math.Max(call.Request.InputItems, 1);
        var buffer = JsonBuffer.Rent();
        try
        {
            var w = buffer.Writer;
            w.WriteStartObject();
            w.WriteString(OpenAIJson.Object, s_list);
            w.WriteStartArray(s_data);
            byte[]? raw = call.Request.Base64Encoding ? new byte[dims * sizeof(float)] : null;
            for (var i = 0; i < items; i++)
            {
                w.WriteStartObject();
                w.WriteString(OpenAIJson.Object, s_embeddingType);
                w.WriteNumber(IndexName, i);
                if (raw is not null)
                {
                    // OpenAI's base64 format: little-endian float32s.
                    for (var j = 0; j < dims; j++)
                        BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(j * sizeof(float)), Component(i, j));
                    w.WriteBase64String(s_embeddingType, raw);
                }
                else
                {
                    w.WriteStartArray(s_embeddingType);
                    for (var j = 0; j < dims; j++) w.WriteNumberValue(Component(i, j));
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString(Model, call.Model);
            if (call.ReportUsage) WriteEmbeddingsUsage(w, call.Usage);
            w.WriteEndObject();
            await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
        }
        finally
        {
            buffer.Return();
        }
    }
}
