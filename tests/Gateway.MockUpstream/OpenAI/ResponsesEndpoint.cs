using System.Text.Json;
using Gateway.MockUpstream.Hosting;
using Gateway.MockUpstream.Responses;
using Gateway.MockUpstream.Tokens;
using static Gateway.MockUpstream.OpenAI.OpenAIJson;

namespace Gateway.MockUpstream.OpenAI;

/// <summary>POST /v1/responses: a response object, or the Responses API event stream.</summary>
/// <remarks>
/// A reply cut short by max_output_tokens has status "incomplete" and its stream ends with
/// response.incomplete instead of response.completed, as OpenAI does; both carry usage.
/// </remarks>
internal static class ResponsesEndpoint
{
    private static readonly JsonEncodedText s_response = JsonEncodedText.Encode("response");
    private static readonly JsonEncodedText s_type = JsonEncodedText.Encode("type");
    private static readonly JsonEncodedText s_sequenceNumber = JsonEncodedText.Encode("sequence_number");
    private static readonly JsonEncodedText s_createdAt = JsonEncodedText.Encode("created_at");
    private static readonly JsonEncodedText s_status = JsonEncodedText.Encode("status");
    private static readonly JsonEncodedText s_inProgress = JsonEncodedText.Encode("in_progress");
    private static readonly JsonEncodedText s_completed = JsonEncodedText.Encode("completed");
    private static readonly JsonEncodedText s_incomplete = JsonEncodedText.Encode("incomplete");
    private static readonly JsonEncodedText s_output = JsonEncodedText.Encode("output");
    private static readonly JsonEncodedText s_outputText = JsonEncodedText.Encode("output_text");
    private static readonly JsonEncodedText s_item = JsonEncodedText.Encode("item");
    private static readonly JsonEncodedText s_itemId = JsonEncodedText.Encode("item_id");
    private static readonly JsonEncodedText s_outputIndex = JsonEncodedText.Encode("output_index");
    private static readonly JsonEncodedText s_contentIndex = JsonEncodedText.Encode("content_index");
    private static readonly JsonEncodedText s_part = JsonEncodedText.Encode("part");
    private static readonly JsonEncodedText s_error = JsonEncodedText.Encode("error");
    private static readonly JsonEncodedText s_incompleteDetails = JsonEncodedText.Encode("incomplete_details");
    private static readonly JsonEncodedText s_reason = JsonEncodedText.Encode("reason");
    private static readonly JsonEncodedText s_maxOutputTokensName = JsonEncodedText.Encode("max_output_tokens");
    private static readonly JsonEncodedText s_instructions = JsonEncodedText.Encode("instructions");
    private static readonly JsonEncodedText s_parallelToolCalls = JsonEncodedText.Encode("parallel_tool_calls");
    private static readonly JsonEncodedText s_previousResponseId = JsonEncodedText.Encode("previous_response_id");
    private static readonly JsonEncodedText s_store = JsonEncodedText.Encode("store");
    private static readonly JsonEncodedText s_temperature = JsonEncodedText.Encode("temperature");
    private static readonly JsonEncodedText s_topP = JsonEncodedText.Encode("top_p");
    private static readonly JsonEncodedText s_toolChoice = JsonEncodedText.Encode("tool_choice");
    private static readonly JsonEncodedText s_auto = JsonEncodedText.Encode("auto");
    private static readonly JsonEncodedText s_tools = JsonEncodedText.Encode("tools");
    private static readonly JsonEncodedText s_truncation = JsonEncodedText.Encode("truncation");
    private static readonly JsonEncodedText s_disabled = JsonEncodedText.Encode("disabled");
    private static readonly JsonEncodedText s_metadata = JsonEncodedText.Encode("metadata");
    private static readonly JsonEncodedText s_format = JsonEncodedText.Encode("format");
    private static readonly JsonEncodedText s_textType = JsonEncodedText.Encode("text");
    private static readonly JsonEncodedText s_messageType = JsonEncodedText.Encode("message");
    private static readonly JsonEncodedText s_delta = JsonEncodedText.Encode("delta");

    private static readonly JsonEncodedText s_evCreated = JsonEncodedText.Encode("response.created");
    private static readonly JsonEncodedText s_evInProgress = JsonEncodedText.Encode("response.in_progress");
    private static readonly JsonEncodedText s_evItemAdded = JsonEncodedText.Encode("response.output_item.added");
    private static readonly JsonEncodedText s_evPartAdded = JsonEncodedText.Encode("response.content_part.added");
    private static readonly JsonEncodedText s_evDelta = JsonEncodedText.Encode("response.output_text.delta");
    private static readonly JsonEncodedText s_evTextDone = JsonEncodedText.Encode("response.output_text.done");
    private static readonly JsonEncodedText s_evPartDone = JsonEncodedText.Encode("response.content_part.done");
    private static readonly JsonEncodedText s_evItemDone = JsonEncodedText.Encode("response.output_item.done");
    private static readonly JsonEncodedText s_evCompleted = JsonEncodedText.Encode("response.completed");
    private static readonly JsonEncodedText s_evIncomplete = JsonEncodedText.Encode("response.incomplete");

    private enum Phase { InProgress, Done }

    public static async Task HandleAsync(MockCall call)
    {
        var buffer = JsonBuffer.Rent();
        try
        {
            var ids = new Ids(call.Id("resp_mock"), call.Id("msg_mock"));
            if (call.Request.Stream) await StreamAsync(call, buffer, ids);
            else
            {
                WriteResponse(buffer.Writer, call, ids, Phase.Done);
                await MockResponses.WriteJsonAsync(call.Context, StatusCodes.Status200OK, buffer, call.Controls.Fault);
            }
        }
        finally
        {
            buffer.Return();
        }
    }

    private readonly record struct Ids(string Response, string Message);

    private static async Task StreamAsync(MockCall call, JsonBuffer buffer, Ids ids)
    {
        var sse = new SseWriter(call.Context, call.Controls, buffer);
        var seq = 0;

        var w = BeginEvent(sse, "event: response.created\ndata: "u8, s_evCreated, seq++);
        w.WritePropertyName(s_response);
        WriteResponse(w, call, ids, Phase.InProgress);
        await EndEventAsync(sse, w);

        w = BeginEvent(sse, "event: response.in_progress\ndata: "u8, s_evInProgress, seq++);
        w.WritePropertyName(s_response);
        WriteResponse(w, call, ids, Phase.InProgress);
        await EndEventAsync(sse, w);

        w = BeginEvent(sse, "event: response.output_item.added\ndata: "u8, s_evItemAdded, seq++);
        w.WriteNumber(s_outputIndex, 0);
        w.WritePropertyName(s_item);
        WriteMessageItem(w, call, ids, Phase.InProgress);
        await EndEventAsync(sse, w);

        w = BeginEvent(sse, "event: response.content_part.added\ndata: "u8, s_evPartAdded, seq++);
        WritePosition(w, ids);
        w.WritePropertyName(s_part);
        WriteTextPart(w, ReadOnlySpan<byte>.Empty);
        await EndEventAsync(sse, w);

        for (var i = 0; i < call.OutputTokens; i++)
        {
            w = BeginEvent(sse, "event: response.output_text.delta\ndata: "u8, s_evDelta, seq++);
            WritePosition(w, ids);
            w.WriteString(s_delta, MockReply.Piece(i));
            w.WriteStartArray(Logprobs);
            w.WriteEndArray();
            await EndEventAsync(sse, w);
        }

        w = BeginEvent(sse, "event: response.output_text.done\ndata: "u8, s_evTextDone, seq++);
        WritePosition(w, ids);
        w.WriteString(Text, MockReply.Utf8(call.OutputTokens));
        w.WriteStartArray(Logprobs);
        w.WriteEndArray();
        await EndEventAsync(sse, w);

        w = BeginEvent(sse, "event: response.content_part.done\ndata: "u8, s_evPartDone, seq++);
        WritePosition(w, ids);
        w.WritePropertyName(s_part);
        WriteTextPart(w, MockReply.Utf8(call.OutputTokens));
        await EndEventAsync(sse, w);

        w = BeginEvent(sse, "event: response.output_item.done\ndata: "u8, s_evItemDone, seq++);
        w.WriteNumber(s_outputIndex, 0);
        w.WritePropertyName(s_item);
        WriteMessageItem(w, call, ids, Phase.Done);
        await EndEventAsync(sse, w);

        w = call.Truncated
            ? BeginEvent(sse, "event: response.incomplete\ndata: "u8, s_evIncomplete, seq)
            : BeginEvent(sse, "event: response.completed\ndata: "u8, s_evCompleted, seq);
        w.WritePropertyName(s_response);
        WriteResponse(w, call, ids, Phase.Done);
        await EndEventAsync(sse, w);
    }

    private static Utf8JsonWriter BeginEvent(SseWriter sse, ReadOnlySpan<byte> prefix, JsonEncodedText type, int seq)
    {
        var w = sse.Begin(prefix);
        w.WriteStartObject();
        w.WriteString(s_type, type);
        w.WriteNumber(s_sequenceNumber, seq);
        return w;
    }

    private static Task EndEventAsync(SseWriter sse, Utf8JsonWriter w)
    {
        w.WriteEndObject();
        return sse.SendAsync();
    }

    private static void WritePosition(Utf8JsonWriter w, Ids ids)
    {
        w.WriteString(s_itemId, ids.Message);
        w.WriteNumber(s_outputIndex, 0);
        w.WriteNumber(s_contentIndex, 0);
    }

    private static void WriteResponse(Utf8JsonWriter w, MockCall call, Ids ids, Phase phase)
    {
        var done = phase == Phase.Done;
        w.WriteStartObject();
        w.WriteString(Id, ids.Response);
        w.WriteString(OpenAIJson.Object, s_response);
        w.WriteNumber(s_createdAt, call.Created);
        w.WriteString(s_status, !done ? s_inProgress : call.Truncated ? s_incomplete : s_completed);
        w.WriteNull(s_error);
        if (done && call.Truncated)
        {
            w.WriteStartObject(s_incompleteDetails);
            w.WriteString(s_reason, s_maxOutputTokensName);
            w.WriteEndObject();
        }
        else w.WriteNull(s_incompleteDetails);
        w.WriteNull(s_instructions);
        if (call.Request.MaxTokens is { } max) w.WriteNumber(s_maxOutputTokensName, max);
        else w.WriteNull(s_maxOutputTokensName);
        w.WriteString(Model, call.Model);
        w.WriteStartArray(s_output);
        if (done) WriteMessageItem(w, call, ids, Phase.Done);
        w.WriteEndArray();
        w.WriteBoolean(s_parallelToolCalls, true);
        w.WriteNull(s_previousResponseId);
        w.WriteBoolean(s_store, false);
        w.WriteNumber(s_temperature, 1.0);
        w.WriteStartObject(Text);
        w.WriteStartObject(s_format);
        w.WriteString(s_type, s_textType);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteString(s_toolChoice, s_auto);
        w.WriteStartArray(s_tools);
        w.WriteEndArray();
        w.WriteNumber(s_topP, 1.0);
        w.WriteString(s_truncation, s_disabled);
        if (done && call.ReportUsage) WriteResponsesUsage(w, call.Usage);
        else w.WriteNull(Usage);
        w.WriteStartObject(s_metadata);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteMessageItem(Utf8JsonWriter w, MockCall call, Ids ids, Phase phase)
    {
        var done = phase == Phase.Done;
        w.WriteStartObject();
        w.WriteString(Id, ids.Message);
        w.WriteString(s_type, s_messageType);
        w.WriteString(s_status, !done ? s_inProgress : call.Truncated ? s_incomplete : s_completed);
        w.WriteString(Role, Assistant);
        w.WriteStartArray(Content);
        if (done) WriteTextPart(w, MockReply.Utf8(call.OutputTokens));
        w.WriteEndArray();
        w.WriteEndObject();
    }

    private static void WriteTextPart(Utf8JsonWriter w, ReadOnlySpan<byte> text)
    {
        w.WriteStartObject();
        w.WriteString(s_type, s_outputText);
        w.WriteStartArray(Annotations);
        w.WriteEndArray();
        w.WriteStartArray(Logprobs);
        w.WriteEndArray();
        w.WriteString(Text, text);
        w.WriteEndObject();
    }
}
