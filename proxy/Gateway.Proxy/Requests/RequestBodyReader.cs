using System.Text.Json;
using System.Text.Unicode;

namespace Gateway.Proxy.Requests;

/// <summary>What the proxy needs from a request body, with byte offsets for the deliberate edits.</summary>
public struct RequestFields
{
    public string? Model;
    /// <summary>Offset and length of the model's JSON string token (quotes included).</summary>
    public int ModelTokenStart;
    public int ModelTokenLength;
    public bool Stream;
    /// <summary>max_tokens / max_completion_tokens / max_output_tokens, or -1.</summary>
    public long MaxTokens;
    /// <summary>Completions generated per request: the larger of n and best_of (OpenAI), 1 when absent.</summary>
    public long Choices;
    /// <summary>Offset of the root object's '{'.</summary>
    public int RootStart;
    /// <summary>Offset and length of the stream_options value, or -1 when absent.</summary>
    public int StreamOptionsStart;
    public int StreamOptionsLength;
    public bool StreamOptionsIsObject;
    public bool StreamOptionsHasProperties;
    /// <summary>Offset and length of the include_usage value inside stream_options, or -1.</summary>
    public int IncludeUsageStart;
    public int IncludeUsageLength;
    public bool IncludeUsage;
}

/// <summary>Outcome of reading a request body.</summary>
public enum BodyReadStatus : byte
{
    Ok,
    InvalidUtf8,
    MalformedJson,
    NotAnObject,
    MissingModel,
    /// <summary>The root object names "model" more than once: parsers that keep the first and the last disagree.</summary>
    DuplicateModel,
}

/// <summary>
/// Reads model, stream, max tokens and stream_options from a JSON body with <see cref="Utf8JsonReader"/>,
/// validating the whole document, without materialising the body as a string.
/// </summary>
public static class RequestBodyReader
{
    public static BodyReadStatus Read(ReadOnlySpan<byte> body, out RequestFields fields)
    {
        fields = default;
        fields.MaxTokens = -1;
        fields.Choices = 1;
        fields.StreamOptionsStart = -1;
        fields.IncludeUsageStart = -1;
        fields.ModelTokenStart = -1;
        if (!Utf8.IsValid(body)) return BodyReadStatus.InvalidUtf8;
        var seenModel = false;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = 256 });
        try
        {
            if (!reader.Read()) return BodyReadStatus.MalformedJson;
            if (reader.TokenType != JsonTokenType.StartObject) return BodyReadStatus.NotAnObject;
            fields.RootStart = (int)reader.TokenStartIndex;
            while (reader.Read())
            {
                if (reader.TokenType == JsonTokenType.EndObject && reader.CurrentDepth == 0) break;
                // Root-level property names only; everything else is skipped (and thereby validated).
                if (reader.TokenType != JsonTokenType.PropertyName) return BodyReadStatus.MalformedJson;
                if (reader.ValueTextEquals("model"u8))
                {
                    // Which one an upstream honours depends on its parser; the one checked and billed must be the one served.
                    if (seenModel) return BodyReadStatus.DuplicateModel;
                    seenModel = true;
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        fields.Model = reader.GetString();
                        fields.ModelTokenStart = (int)reader.TokenStartIndex;
                        fields.ModelTokenLength = (int)(reader.BytesConsumed - reader.TokenStartIndex);
                    }
                    else SkipValue(ref reader);
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.True) fields.Stream = true;
                    else SkipValue(ref reader);
                }
                else if (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8) || reader.ValueTextEquals("max_output_tokens"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n > 0) fields.MaxTokens = n;
                    else SkipValue(ref reader);
                }
                else if (reader.ValueTextEquals("n"u8) || reader.ValueTextEquals("best_of"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var n) && n > fields.Choices) fields.Choices = n;
                    else SkipValue(ref reader);
                }
                else if (reader.ValueTextEquals("stream_options"u8))
                {
                    reader.Read();
                    fields.StreamOptionsStart = (int)reader.TokenStartIndex;
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        fields.StreamOptionsIsObject = true;
                        ReadStreamOptions(ref reader, ref fields);
                    }
                    else SkipValue(ref reader);
                    fields.StreamOptionsLength = (int)(reader.BytesConsumed - fields.StreamOptionsStart);
                }
                else
                {
                    reader.Read();
                    SkipValue(ref reader);
                }
            }
            // Trailing content after the root object is malformed.
            if (reader.Read()) return BodyReadStatus.MalformedJson;
        }
        catch (JsonException)
        {
            return BodyReadStatus.MalformedJson;
        }
        catch (InvalidOperationException)
        {
            // Valid JSON grammar, but the model's \u escapes decode to a lone surrogate: not text.
            return BodyReadStatus.InvalidUtf8;
        }
        if (reader.BytesConsumed == 0 || reader.CurrentDepth != 0) return BodyReadStatus.MalformedJson;
        return string.IsNullOrEmpty(fields.Model) ? BodyReadStatus.MissingModel : BodyReadStatus.Ok;
    }

    private static void ReadStreamOptions(ref Utf8JsonReader reader, ref RequestFields fields)
    {
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            fields.StreamOptionsHasProperties = true;
            var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
            reader.Read();
            if (isIncludeUsage)
            {
                fields.IncludeUsageStart = (int)reader.TokenStartIndex;
                fields.IncludeUsage = reader.TokenType == JsonTokenType.True;
            }
            SkipValue(ref reader);
            if (isIncludeUsage) fields.IncludeUsageLength = (int)(reader.BytesConsumed - fields.IncludeUsageStart);
        }
    }

    private static void SkipValue(ref Utf8JsonReader reader)
    {
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray) reader.Skip();
    }
}
