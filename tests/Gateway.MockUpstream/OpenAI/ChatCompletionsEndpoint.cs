using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;
using Gateway.MockUpstream.Tokens;
using static Gateway.MockUpstream.OpenAI.OpenAIJson;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>POST /v1/chat/completions (also the Azure deployment route): a JSON reply or a chunk stream.</summary>
internal static class ChatCompletionsEndpoint
{
    private static readonly JsonEncodedText s_completion = JsonEncodedText.Encode("chat.completion");
    private static readonly JsonEncodedText s_chunk = JsonEncodedText.Encode("chat.completion.chunk");

    public static async Task HandleAsync(MockCall call)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            if (call.Request.Stream) await StreamAsync(call, buffer);
            else
            {
                WriteCompletion(buffer.Writer, call);
                await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
            }
        }
        finally
        {
            buffer.Return();
        }
    }

    private static void WriteCompletion(Utf8JsonWriter w, MockCall call)
    {
        w.WriteStartObject();
        WriteHead(w, call.Id("chatcmpl-mock-"), s_completion, call);
        w.WriteStartArray(Choices);
        w.WriteStartObject();
        w.WriteNumber(IndexName, 0);
        w.WriteStartObject(Message);
        w.WriteString(Role, Assistant);
        w.WriteString(Content, MockReply.Utf8(call.OutputTokens));
        w.WriteNull(Refusal);
        w.WriteStartArray(Annotations);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteNull(Logprobs);
        w.WriteString(FinishReason, call.Truncated ? Length : Stop);
        w.WriteEndObject();
        w.WriteEndArray();
        if (call.ReportUsage) WriteUsage(w, call.Usage);
        w.WriteString(ServiceTier, Default);
        w.WriteString(SystemFingerprint, Fingerprint);
        w.WriteEndObject();
    }

    // Chunks as OpenAI sends them: role first, one chunk per token, a finish chunk, then (only with
    // stream_options.include_usage) a chunk with empty choices carrying usage; every chunk before it
    // has "usage": null in that mode. The stream ends with data: [DONE].
    private static async Task StreamAsync(MockCall call, JsonBuffer buffer)
    {
        var sse = new SseWriter(call.Context, call.Controls, buffer);
        var id = call.Id("chatcmpl-mock-");
        var withUsage = call.Request.IncludeUsage && call.ReportUsage;

        WriteChunk(sse.Begin("data: "u8), id, call, withUsage, ChunkKind.Role, 0);
        await sse.SendAsync();
        for (var i = 0; i < call.OutputTokens; i++)
        {
            WriteChunk(sse.Begin("data: "u8), id, call, withUsage, ChunkKind.Content, i);
            await sse.SendAsync();
        }
        WriteChunk(sse.Begin("data: "u8), id, call, withUsage, ChunkKind.Finish, 0);
        await sse.SendAsync();
        if (withUsage)
        {
            var w = sse.Begin("data: "u8);
            w.WriteStartObject();
            WriteHead(w, id, s_chunk, call);
            w.WriteString(ServiceTier, Default);
            w.WriteString(SystemFingerprint, Fingerprint);
            w.WriteStartArray(Choices);
            w.WriteEndArray();
            WriteUsage(w, call.Usage);
            w.WriteEndObject();
            await sse.SendAsync();
        }
        await sse.SendRawAsync("data: [DONE]\n\n"u8);
    }

    private enum ChunkKind { Role, Content, Finish }

    private static void WriteChunk(Utf8JsonWriter w, string id, MockCall call, bool usageNull, ChunkKind kind, int token)
    {
        w.WriteStartObject();
        WriteHead(w, id, s_chunk, call);
        w.WriteString(ServiceTier, Default);
        w.WriteString(SystemFingerprint, Fingerprint);
        w.WriteStartArray(Choices);
        w.WriteStartObject();
        w.WriteNumber(IndexName, 0);
        w.WriteStartObject(Delta);
        switch (kind)
        {
            case ChunkKind.Role:
                w.WriteString(Role, Assistant);
                w.WriteString(Content, ""u8);
                w.WriteNull(Refusal);
                break;
            case ChunkKind.Content:
                w.WriteString(Content, MockReply.Piece(token));
                break;
        }
        w.WriteEndObject();
        w.WriteNull(Logprobs);
        if (kind == ChunkKind.Finish) w.WriteString(FinishReason, call.Truncated ? Length : Stop);
        else w.WriteNull(FinishReason);
        w.WriteEndObject();
        w.WriteEndArray();
        if (usageNull) w.WriteNull(Usage);
        w.WriteEndObject();
    }
}
