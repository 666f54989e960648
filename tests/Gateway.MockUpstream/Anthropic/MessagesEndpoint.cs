using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;
using Gateway.MockUpstream.Tokens;

namespace Gateway.MockUpstream.Anthropic;

/// <summary>POST /v1/messages: a message, or Anthropic's event stream; and /v1/messages/count_tokens.</summary>
/// <remarks>
/// Usage follows Anthropic: input_tokens excludes cache reads and writes, which are reported in
/// cache_read_input_tokens / cache_creation_input_tokens; output_tokens includes reasoning.
/// </remarks>
internal static class MessagesEndpoint
{
    private static readonly JsonEncodedText s_id = JsonEncodedText.Encode("id");
    private static readonly JsonEncodedText s_type = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText s_message = JsonEncodedText.Encode("message");
    private static readonly JsonEncodedText s_role = JsonEncodedText.Encode("role");
    private static readonly JsonEncodedText s_assistant = JsonEncodedText.Encode("assistant");
    private static readonly JsonEncodedText s_model = JsonEncodedText.Encode("model");
    private static readonly JsonEncodedText s_content = JsonEncodedText.Encode("content");
    private static readonly JsonEncodedText s_text = JsonEncodedText.Encode("text");
    private static readonly JsonEncodedText s_textDelta = JsonEncodedText.Encode("text_delta");
    private static readonly JsonEncodedText s_stopReason = JsonEncodedText.Encode("stop_reason");
    private static readonly JsonEncodedText s_stopSequence = JsonEncodedText.Encode("stop_sequence");
    private static readonly JsonEncodedText s_endTurn = JsonEncodedText.Encode("end_turn");
    private static readonly JsonEncodedText s_maxTokens = JsonEncodedText.Encode("max_tokens");
    private static readonly JsonEncodedText s_usage = JsonEncodedText.Encode("usage");
    private static readonly JsonEncodedText s_inputTokens = JsonEncodedText.Encode("input_tokens");
    private static readonly JsonEncodedText s_outputTokens = JsonEncodedText.Encode("output_tokens");
    private static readonly JsonEncodedText s_cacheCreation = JsonEncodedText.Encode("cache_creation_input_tokens");
    private static readonly JsonEncodedText s_cacheRead = JsonEncodedText.Encode("cache_read_input_tokens");
    private static readonly JsonEncodedText s_serviceTier = JsonEncodedText.Encode("service_tier");
    private static readonly JsonEncodedText s_standard = JsonEncodedText.Encode("standard");
    private static readonly JsonEncodedText s_index = JsonEncodedText.Encode("index");
    private static readonly JsonEncodedText s_contentBlock = JsonEncodedText.Encode("content_block");
    private static readonly JsonEncodedText s_delta = JsonEncodedText.Encode("delta");
    private static readonly JsonEncodedText s_messageStart = JsonEncodedText.Encode("message_start");
    private static readonly JsonEncodedText s_blockStart = JsonEncodedText.Encode("content_block_start");
    private static readonly JsonEncodedText s_blockDelta = JsonEncodedText.Encode("content_block_delta");
    private static readonly JsonEncodedText s_blockStop = JsonEncodedText.Encode("content_block_stop");
    private static readonly JsonEncodedText s_messageDelta = JsonEncodedText.Encode("message_delta");

    public static async Task HandleAsync(MockCall call)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            if (call.Request.Stream) await StreamAsync(call, buffer);
            else
            {
                WriteMessage(buffer.Writer, call, call.Id("msg_mock"), complete: true);
                await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
            }
        }
        finally
        {
            buffer.Return();
        }
    }

    /// <summary>POST /v1/messages/count_tokens: {"input_tokens": N}, the same N a message reply reports.</summary>
    public static async Task CountTokensAsync(MockCall call)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            var w = buffer.Writer;
            w.WriteStartObject();
            w.WriteNumber(s_inputTokens, call.Usage.Input);
            w.WriteEndObject();
            await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
        }
        finally
        {
            buffer.Return();
        }
    }

    // message_start (input usage, output_tokens 1), content_block_start, ping, one
    // content_block_delta per token, content_block_stop, message_delta (cumulative output_tokens),
    // message_stop.
    private static async Task StreamAsync(MockCall call, JsonBuffer buffer)
    {
        var sse = new SseWriter(call.Context, call.Controls, buffer);

        var w = sse.Begin("event: message_start\ndata: "u8);
        w.WriteStartObject();
        w.WriteString(s_type, s_messageStart);
        w.WritePropertyName(s_message);
        WriteMessage(w, call, call.Id("msg_mock"), complete: false);
        w.WriteEndObject();
        await sse.SendAsync();

        w = sse.Begin("event: content_block_start\ndata: "u8);
        w.WriteStartObject();
        w.WriteString(s_type, s_blockStart);
        w.WriteNumber(s_index, 0);
        w.WriteStartObject(s_contentBlock);
        w.WriteString(s_type, s_text);
        w.WriteString(s_text, ""u8);
        w.WriteEndObject();
        w.WriteEndObject();
        await sse.SendAsync();

        await sse.SendRawAsync("event: ping\ndata: {\"type\": \"ping\"}\n\n"u8);

        for (var i = 0; i < call.OutputTokens; i++)
        {
            w = sse.Begin("event: content_block_delta\ndata: "u8);
            w.WriteStartObject();
            w.WriteString(s_type, s_blockDelta);
            w.WriteNumber(s_index, 0);
            w.WriteStartObject(s_delta);
            w.WriteString(s_type, s_textDelta);
            w.WriteString(s_text, MockReply.Piece(i));
            w.WriteEndObject();
            w.WriteEndObject();
            await sse.SendAsync();
        }

        w = sse.Begin("event: content_block_stop\ndata: "u8);
        w.WriteStartObject();
        w.WriteString(s_type, s_blockStop);
        w.WriteNumber(s_index, 0);
        w.WriteEndObject();
        await sse.SendAsync();

        w = sse.Begin("event: message_delta\ndata: "u8);
        w.WriteStartObject();
        w.WriteString(s_type, s_messageDelta);
        w.WriteStartObject(s_delta);
        w.WriteString(s_stopReason, call.Truncated ? s_maxTokens : s_endTurn);
        w.WriteNull(s_stopSequence);
        w.WriteEndObject();
        if (call.ReportUsage)
        {
            w.WriteStartObject(s_usage);
            w.WriteNumber(s_outputTokens, call.Usage.TotalOutput);
            w.WriteEndObject();
        }
        w.WriteEndObject();
        await sse.SendAsync();

        await sse.SendRawAsync("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);
    }

    // complete=false is the message inside message_start: no content yet, output_tokens 1.
    private static void WriteMessage(Utf8JsonWriter w, MockCall call, string id, bool complete)
    {
        w.WriteStartObject();
        w.WriteString(s_id, id);
        w.WriteString(s_type, s_message);
        w.WriteString(s_role, s_assistant);
        w.WriteString(s_model, call.Model);
        w.WriteStartArray(s_content);
        if (complete)
        {
            w.WriteStartObject();
            w.WriteString(s_type, s_text);
            w.WriteString(s_text, MockReply.Utf8(call.OutputTokens));
            w.WriteEndObject();
        }
        w.WriteEndArray();
        if (complete) w.WriteString(s_stopReason, call.Truncated ? s_maxTokens : s_endTurn);
        else w.WriteNull(s_stopReason);
        w.WriteNull(s_stopSequence);
        if (call.ReportUsage)
        {
            var u = call.Usage;
            w.WriteStartObject(s_usage);
            w.WriteNumber(s_inputTokens, u.Input);
            w.WriteNumber(s_cacheCreation, u.CacheWrite);
            w.WriteNumber(s_cacheRead, u.CachedRead);
            w.WriteNumber(s_outputTokens, complete ? u.TotalOutput : 1);
            w.WriteString(s_serviceTier, s_standard);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
