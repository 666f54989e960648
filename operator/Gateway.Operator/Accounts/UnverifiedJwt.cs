using System.Text.Json;

namespace Gateway.Operator.Accounts;

/// <summary>
/// Reads claims from a JWT's payload WITHOUT checking its signature. Only used to fill in what an auth file
/// leaves out (the e-mail for a name, the ChatGPT account id, the access token's expiry); never for trust.
/// </summary>
public static class UnverifiedJwt
{
    private const string OpenAIAuthClaim = "https://api.openai.com/auth";

    /// <summary>The payload as a JSON object, or null when <paramref name="token"/> is not a JWT.</summary>
    public static JsonElement? Payload(string? token)
    {
        if (string.IsNullOrEmpty(token)) return null;
        var parts = token.Split('.');
        if (parts.Length != 3 || parts[1].Length == 0) return null;
        try
        {
            var bytes = Convert.FromBase64String(ToBase64(parts[1]));
            using var doc = JsonDocument.Parse(bytes);
            return doc.RootElement.ValueKind == JsonValueKind.Object ? doc.RootElement.Clone() : null;
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            return null;
        }
    }

    public static string? Email(JsonElement? payload) => String(payload, "email");

    /// <summary>ChatGPT account id: the "https://api.openai.com/auth" claim's chatgpt_account_id.</summary>
    public static string? ChatGptAccountId(JsonElement? payload) =>
        payload is { } p && p.TryGetProperty(OpenAIAuthClaim, out var auth) && auth.ValueKind == JsonValueKind.Object
            ? String(auth, "chatgpt_account_id")
            : null;

    public static bool HasOpenAIAuthClaim(JsonElement? payload) => payload is { } p && p.TryGetProperty(OpenAIAuthClaim, out _);

    public static DateTimeOffset? Expiry(JsonElement? payload) =>
        payload is { } p && p.TryGetProperty("exp", out var exp) && exp.ValueKind == JsonValueKind.Number && exp.TryGetInt64(out var s) && s > 0
            ? DateTimeOffset.FromUnixTimeSeconds(s)
            : null;

    private static string? String(JsonElement? o, string name) =>
        o is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: > 0 } s
            ? s
            : null;

    private static string ToBase64(string base64Url)
    {
        var s = base64Url.Replace('-', '+').Replace('_', '/');
        return (s.Length % 4) switch { 2 => s + "==", 3 => s + "=", _ => s };
    }
}
