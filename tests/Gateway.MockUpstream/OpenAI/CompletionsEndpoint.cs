using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;
using Gateway.MockUpstream.Tokens;
using static Gateway.MockUpstream.OpenAI.OpenAIJson;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>POST /v1/completions, the legacy text completion API.</summary>
internal static class CompletionsEndpoint
{
    private static readonly JsonEncodedText s_textCompletion = JsonEncodedText.Encode("text_completion");

    public static async Task HandleAsync(MockCall call)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            if (call.Request.Stream) await StreamAsync(call, buffer);
            else
            {
                var w = buffer.Writer;
                w.WriteStartObject();
                WriteHead(w, call.Id("cmpl-mock-"), s_textCompletion, call);
                w.WriteStartArray(Choices);
                WriteChoice(w, MockReply.Utf8(call.OutputTokens), call.Truncated ? Length : Stop);
                w.WriteEndArray();
                if (call.ReportUsage) WriteUsage(w, call.Usage);
                w.WriteEndObject();
                await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
            }
        }
        finally
        {
            buffer.Return();
        }
    }

    private static async Task StreamAsync(MockCall call, JsonBuffer buffer)
    {
        var sse = new SseWriter(call.Context, call.Controls, buffer);
        var id = call.Id("cmpl-mock-");
        var withUsage = call.Request.IncludeUsage && call.ReportUsage;
        for (var i = 0; i <= call.OutputTokens; i++)
        {
            var last = i == call.OutputTokens;
            var w = sse.Begin("data: "u8);
            w.WriteStartObject();
            WriteHead(w, id, s_textCompletion, call);
            w.WriteStartArray(Choices);
            w.WriteStartObject();
            if (last) w.WriteString(Text, ""u8);
            else w.WriteString(Text, MockReply.Piece(i));
            w.WriteNumber(IndexName, 0);
            w.WriteNull(Logprobs);
            if (last) w.WriteString(FinishReason, call.Truncated ? Length : Stop);
            else w.WriteNull(FinishReason);
            w.WriteEndObject();
            w.WriteEndArray();
            if (withUsage) w.WriteNull(Usage);
            w.WriteEndObject();
            await sse.SendAsync();
        }
        if (withUsage)
        {
            var w = sse.Begin("data: "u8);
            w.WriteStartObject();
            WriteHead(w, id, s_textCompletion, call);
            w.WriteStartArray(Choices);
            w.WriteEndArray();
            WriteUsage(w, call.Usage);
            w.WriteEndObject();
            await sse.SendAsync();
        }
        await sse.SendRawAsync("data: [DONE]\n\n"u8);
    }

    private static void WriteChoice(Utf8JsonWriter w, ReadOnlySpan<byte> text, JsonEncodedText finishReason)
    {
        w.WriteStartObject();
        w.WriteString(Text, text);
        w.WriteNumber(IndexName, 0);
        w.WriteNull(Logprobs);
        w.WriteString(FinishReason, finishReason);
        w.WriteEndObject();
    }
}
