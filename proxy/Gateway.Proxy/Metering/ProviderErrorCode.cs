using System.Text.Json;
using Gateway.Core.Usage;

namespace Gateway.Proxy.Metering;

/// <summary>
/// Reads the error code from a provider's error body, for the usage record of a failed request: OpenAI's
/// <c>{"error":{"code":"insufficient_quota","type":...}}</c> (code, else type) and Anthropic's
/// <c>{"type":"error","error":{"type":"overloaded_error"}}</c>. Only called for error responses.
/// </summary>
public static class ProviderErrorCode
{
    /// <summary>The code, or null when the body names none that is short and plain (letters, digits, _ . -).</summary>
    public static string? Read(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isError = reader.ValueTextEquals("error"u8);
                if (!reader.Read()) return null;
                if (isError && reader.TokenType == JsonTokenType.StartObject) return ReadErrorObject(ref reader);
                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }
        return null;
    }

    private static string? ReadErrorObject(ref Utf8JsonReader reader)
    {
        string? code = null, type = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isCode = reader.ValueTextEquals("code"u8);
            var isType = !isCode && reader.ValueTextEquals("type"u8);
            if (!reader.Read()) break;
            if (reader.TokenType == JsonTokenType.String && (isCode || isType))
            {
                var value = Plain(ref reader);
                if (isCode) code = value; else type = value;
            }
            else reader.Skip();
        }
        return code ?? type;
    }

    private static string? Plain(ref Utf8JsonReader reader)
    {
        if (reader.ValueIsEscaped || reader.ValueSpan.Length is 0 or > UsageErrorCodes.MaxLength) return null;
        foreach (var b in reader.ValueSpan)
        {
            if (!(b is >= (byte)'a' and <= (byte)'z' || b is >= (byte)'A' and <= (byte)'Z' || b is >= (byte)'0' and <= (byte)'9' || b is (byte)'_' or (byte)'.' or (byte)'-')) return null;
        }
        return reader.GetString();
    }
}
