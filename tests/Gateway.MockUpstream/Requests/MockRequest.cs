using System.Buffers;
using System.Text.Json;
using Gateway.MockUpstream.Tokens;

namespace Gateway.MockUpstream.Requests;

/// <summary>What the mock reads from a request body: just enough to shape a realistic reply.</summary>
internal sealed class MockRequest
{
    public string? Model { get; private set; }
    public bool Stream { get; private set; }
    public bool IncludeUsage { get; private set; }
    /// <summary>Smallest of max_tokens / max_completion_tokens / max_output_tokens, when given.</summary>
    public int? MaxTokens { get; private set; }
    public bool Base64Encoding { get; private set; }
    public int? Dimensions { get; private set; }
    /// <summary>Input tokens by <see cref="MockTokenizer"/>'s rule.</summary>
    public int InputTokens { get; private set; }
    /// <summary>Number of inputs (embeddings: one vector each).</summary>
    public int InputItems { get; private set; }
    /// <summary>Set when the body is not a JSON object; the endpoint answers 400.</summary>
    public string? Error { get; private set; }

    public static readonly MockRequest Empty = new();

    /// <summary>Parses the body. Never throws: malformed JSON sets <see cref="Error"/>.</summary>
    public static MockRequest Parse(ReadOnlySequence<byte> body)
    {
        var r = new MockRequest();
        if (body.IsEmpty)
        {
            r.Error = "The request body is empty; send a JSON object.";
            return r;
        }
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 256 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                r.Error = "The request body must be a JSON object.";
                return r;
            }
            r.ReadTopLevel(ref reader);
        }
        catch (JsonException)
        {
            r.Error = "The request body is not valid JSON.";
        }
        catch (InvalidOperationException)
        {
            r.Error = "The request body has a value of an unexpected type.";
        }
        return r;
    }

    private void ReadTopLevel(ref Utf8JsonReader reader)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("messages"u8)) { reader.Read(); ReadMessages(ref reader); }
            else if (reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("instructions"u8))
            {
                reader.Read();
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.StartArray)
                    InputTokens += MockTokenizer.PerMessageOverhead + CountContent(ref reader);
                else reader.Skip();
            }
            else if (reader.ValueTextEquals("prompt"u8) || reader.ValueTextEquals("input"u8)) { reader.Read(); ReadInputs(ref reader); }
            else if (reader.ValueTextEquals("stream_options"u8)) { reader.Read(); ReadStreamOptions(ref reader); }
            else
            {
                ReadScalar(ref reader);
            }
        }
    }

    // Options with a scalar value; a value of another type is ignored (and skipped whole, so an
    // object where a number belongs cannot derail the rest of the parse).
    private void ReadScalar(ref Utf8JsonReader reader)
    {
        if (reader.ValueTextEquals("model"u8))
        {
            reader.Read();
            Model = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
        }
        else if (reader.ValueTextEquals("stream"u8))
        {
            reader.Read();
            Stream = reader.TokenType == JsonTokenType.True;
        }
        else if (reader.ValueTextEquals("max_tokens"u8) || reader.ValueTextEquals("max_completion_tokens"u8)
                 || reader.ValueTextEquals("max_output_tokens"u8))
        {
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var max))
                MaxTokens = Math.Max(0, MaxTokens is { } m ? Math.Min(m, max) : max);
        }
        else if (reader.ValueTextEquals("encoding_format"u8))
        {
            reader.Read();
            Base64Encoding = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals("base64"u8);
        }
        else if (reader.ValueTextEquals("dimensions"u8))
        {
            reader.Read();
            if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out var d) && d > 0) Dimensions = d;
        }
        else
        {
            reader.Read();
        }
        reader.Skip();
    }

    private void ReadStreamOptions(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject) { reader.Skip(); return; }
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
            reader.Read();
            if (isIncludeUsage) IncludeUsage = reader.TokenType == JsonTokenType.True;
            else reader.Skip();
        }
    }

    private void ReadMessages(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray) { reader.Skip(); return; }
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            InputTokens += MockTokenizer.PerMessageOverhead + CountContent(ref reader);
            InputItems++;
        }
    }

    // prompt / input: a string, an array of strings, token ids, arrays of token ids or message objects.
    private void ReadInputs(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                InputTokens += MockTokenizer.PerMessageOverhead + CountContent(ref reader);
                InputItems++;
                return;
            case JsonTokenType.StartArray:
                break;
            default:
                reader.Skip();
                return;
        }
        var sawTokenIds = false;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.Number:
                    InputTokens++; // a token id is one token
                    sawTokenIds = true;
                    break;
                case JsonTokenType.StartArray:
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        InputTokens++;
                        if (reader.TokenType is JsonTokenType.StartArray or JsonTokenType.StartObject) reader.Skip();
                    }
                    InputItems++;
                    break;
                default:
                    InputTokens += MockTokenizer.PerMessageOverhead + CountContent(ref reader);
                    InputItems++;
                    break;
            }
        }
        if (sawTokenIds) InputItems++;
    }

    /// <summary>Words in a content value: a string, or the "text" (and nested "content") of blocks.</summary>
    private static int CountContent(ref Utf8JsonReader reader)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.String:
                return CountStringWords(ref reader);
            case JsonTokenType.StartArray:
            {
                var words = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray) words += CountContent(ref reader);
                return words;
            }
            case JsonTokenType.StartObject:
            {
                var words = 0;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var counts = reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("content"u8);
                    reader.Read();
                    if (counts) words += CountContent(ref reader);
                    else reader.Skip();
                }
                return words;
            }
            default:
                return 0;
        }
    }

    private static int CountStringWords(ref Utf8JsonReader reader)
    {
        if (!reader.ValueIsEscaped && !reader.HasValueSequence) return MockTokenizer.CountWords(reader.ValueSpan);
        var length = reader.HasValueSequence ? checked((int)reader.ValueSequence.Length) : reader.ValueSpan.Length;
        var rented = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var written = reader.CopyString(rented);
            return MockTokenizer.CountWords(rented.AsSpan(0, written));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
