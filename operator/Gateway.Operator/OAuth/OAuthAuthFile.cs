using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Operator.Reconcilers;

namespace Gateway.Operator.OAuth;

/// <summary>
/// The auth JSON (CLIProxyAPI / Codex format) inside an OAuth account's Secret: which key holds it, its
/// tokens and expiry, and the document with a new token pair put in. Other fields are kept as they are.
/// </summary>
public sealed class OAuthAuthFile
{
    private static readonly string[] ExpiryFields = ["expired", "expiry", "expires_at"];

    private OAuthAuthFile(string secretKey, JsonObject document)
    {
        SecretKey = secretKey;
        Document = document;
    }

    /// <summary>The Secret data key holding the JSON (e.g. "auth.json").</summary>
    public string SecretKey { get; }
    public JsonObject Document { get; }
    public string? AccessToken => Document["access_token"] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;
    public string? RefreshToken => Document["refresh_token"] is JsonValue v && v.TryGetValue<string>(out var s) && s.Length > 0 ? s : null;

    public DateTimeOffset? ExpiresAt
    {
        get
        {
            using var doc = JsonDocument.Parse(Document.ToJsonString());
            return OAuthExpiry.Read(doc.RootElement);
        }
    }

    /// <summary>The first key (in the order the reconciler reads them) whose value is a JSON object with an access_token.</summary>
    public static OAuthAuthFile? Find(IReadOnlyDictionary<string, byte[]> data)
    {
        foreach (var (key, value) in data)
        {
            try
            {
                if (JsonNode.Parse(value) is JsonObject o && o["access_token"] is JsonValue at && at.TryGetValue<string>(out var s) && s.Length > 0)
                    return new OAuthAuthFile(key, o);
            }
            catch (JsonException)
            {
                // Not the auth JSON; look at the next key.
            }
        }
        return null;
    }

    /// <summary>A copy with the new tokens, the new expiry (in the field the file already uses) and last_refresh.</summary>
    public byte[] WithTokens(string accessToken, string? refreshToken, string? idToken, DateTimeOffset? expiresAt, DateTimeOffset refreshedAt)
    {
        var o = (JsonObject)Document.DeepClone();
        o["access_token"] = accessToken;
        if (refreshToken is not null) o["refresh_token"] = refreshToken;
        if (idToken is not null) o["id_token"] = idToken;
        if (expiresAt is { } e)
        {
            var field = ExpiryFields.FirstOrDefault(o.ContainsKey) ?? "expired";
            // expires_at may be unix seconds; keep the type the file uses.
            o[field] = o[field] is JsonValue old && old.GetValueKind() == JsonValueKind.Number
                ? JsonValue.Create(e.ToUnixTimeSeconds())
                : JsonValue.Create(Rfc3339(e));
        }
        o["last_refresh"] = Rfc3339(refreshedAt);
        return Encoding.UTF8.GetBytes(o.ToJsonString());
    }

    /// <summary>A short, non-reversible fingerprint of a token, to tell tokens apart without storing or logging them.</summary>
    public static string Fingerprint(string? token) =>
        token is null ? "" : Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)).AsSpan(0, 12));

    private static string Rfc3339(DateTimeOffset t) => t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
}
