using System.Text.Json;

namespace Gateway.Proxy.Metering;

/// <summary>What one JSON document (a response body or an SSE event's data) contained.</summary>
public struct ScanResult
{
    /// <summary>A usage object with counts was found.</summary>
    public bool HadUsage;
    /// <summary>The document had a root "choices" array that was empty (OpenAI's usage-only chunk).</summary>
    public bool EmptyChoices;
    /// <summary>Anthropic event type message_start.</summary>
    public bool IsMessageStart;
    /// <summary>Input tokens this document's usage reported, or -1.</summary>
    public long InputTokens;
    /// <summary>The document was not valid JSON (truncated, garbage, too deep).</summary>
    public bool Invalid;
}

/// <summary>
/// Finds usage in provider JSON with <see cref="Utf8JsonReader"/>: a "usage" object at any depth
/// (root for chat/embeddings/message_delta, under "response" for Responses events, under "message"
/// for Anthropic's message_start). Also counts generated-text bytes for estimation.
/// </summary>
public static class UsageJsonScanner
{
    public static ScanResult Scan(ReadOnlySpan<byte> json, ref UsageAccumulator usage)
    {
        var result = new ScanResult { InputTokens = -1 };
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType != JsonTokenType.PropertyName) continue;
                var depth = reader.CurrentDepth;
                if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject && ReadUsage(ref reader, ref usage, ref result)) result.HadUsage = true;
                    else if (reader.TokenType is JsonTokenType.StartArray) reader.Skip();
                }
                else if (depth == 1 && reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.EndArray) result.EmptyChoices = true;
                        else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) { /* descend: content inside counts */ }
                    }
                }
                else if (depth == 1 && reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("message_start"u8)) result.IsMessageStart = true;
                }
                else if (IsTextProperty(ref reader))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String) usage.OutputTextBytes += reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
                    else if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject) { /* descend */ }
                }
            }
        }
        catch (JsonException)
        {
            // Not JSON (or truncated): whatever was read before the error still counts.
            result.Invalid = true;
        }
        return result;
    }

    private static bool IsTextProperty(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("delta"u8)
        || reader.ValueTextEquals("arguments"u8) || reader.ValueTextEquals("partial_json"u8) || reader.ValueTextEquals("refusal"u8)
        || reader.ValueTextEquals("reasoning_content"u8) || reader.ValueTextEquals("thinking"u8);

    private static bool ReadUsage(ref Utf8JsonReader reader, ref UsageAccumulator usage, ref ScanResult result)
    {
        var any = false;
        var startDepth = reader.CurrentDepth;
        while (reader.Read())
        {
            if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == startDepth) break;
            if (reader.TokenType != JsonTokenType.PropertyName) continue;
            if (reader.ValueTextEquals("prompt_tokens"u8) || reader.ValueTextEquals("input_tokens"u8))
            {
                if (ReadCount(ref reader, out var n)) { usage.InputTokens = n; result.InputTokens = n; any = true; }
            }
            else if (reader.ValueTextEquals("completion_tokens"u8) || reader.ValueTextEquals("output_tokens"u8))
            {
                if (ReadCount(ref reader, out var n)) { usage.OutputTokens = n; any = true; }
            }
            else if (reader.ValueTextEquals("cache_read_input_tokens"u8))
            {
                if (ReadCount(ref reader, out var n)) { usage.CachedTokens = n; any = true; }
            }
            else if (reader.ValueTextEquals("cache_creation_input_tokens"u8))
            {
                if (ReadCount(ref reader, out var n)) { usage.CacheWriteTokens = n; any = true; }
            }
            else if (reader.ValueTextEquals("prompt_tokens_details"u8) || reader.ValueTextEquals("input_tokens_details"u8))
            {
                reader.Read();
                if (reader.TokenType != JsonTokenType.StartObject) continue;
                var d = reader.CurrentDepth;
                while (reader.Read())
                {
                    if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == d) break;
                    if (reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("cached_tokens"u8))
                    {
                        if (ReadCount(ref reader, out var n)) { usage.CachedTokens = n; any = true; }
                    }
                    else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
                }
            }
            else
            {
                reader.Read();
                if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
            }
        }
        if (any) usage.Seen = true;
        return any;
    }

    private static bool ReadCount(ref Utf8JsonReader reader, out long value)
    {
        reader.Read();
        if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out value) && value >= 0) return true;
        value = 0;
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
        return false;
    }
}
