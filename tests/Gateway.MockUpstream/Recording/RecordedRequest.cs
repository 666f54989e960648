using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;

namespace Gateway.MockUpstream.Recording;

/// <summary>One request as the mock saw it (GET /_mock/requests). Credentials appear only as SHA-256 hashes.</summary>
public sealed record RecordedRequest
{
    /// <summary>1 for the first request since start (or since the last clear).</summary>
    [JsonPropertyName("seq")] public long Sequence { get; init; }
    [JsonPropertyName("timestamp")] public DateTimeOffset Timestamp { get; init; }
    [JsonPropertyName("method")] public string Method { get; init; } = "";
    [JsonPropertyName("path")] public string Path { get; init; } = "";
    /// <summary>The query string including its leading '?', or empty.</summary>
    [JsonPropertyName("query")] public string Query { get; init; } = "";
    /// <summary>Every header except credentials, by lower-case name; repeated values joined by ", ".</summary>
    [JsonPropertyName("headers")] public Dictionary<string, string> Headers { get; init; } = [];
    /// <summary>The credential headers present (authorization, x-api-key, api-key), hashed.</summary>
    [JsonPropertyName("credentials")] public List<RecordedCredential> Credentials { get; init; } = [];
    /// <summary>The raw body bytes (base64 in JSON).</summary>
    [JsonPropertyName("bodyBase64")] public byte[] Body { get; init; } = [];

    /// <summary>The body as UTF-8 text (convenience for tests).</summary>
    public string BodyText() => Encoding.UTF8.GetString(Body);

    /// <summary>The recorded credential from <paramref name="header"/> (lower-case), if one was sent.</summary>
    public RecordedCredential? Credential(string header)
    {
        foreach (var c in Credentials)
            if (string.Equals(c.Header, header, StringComparison.OrdinalIgnoreCase)) return c;
        return null;
    }

    /// <summary>The hash the mock records for a credential value (lower-case hex SHA-256 of its UTF-8 bytes).</summary>
    public static string HashCredential(string credential) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(credential)));
}

/// <summary>A credential header without its value: which header, the scheme (for Authorization), the value's hash.</summary>
/// <param name="Header">authorization, x-api-key or api-key.</param>
/// <param name="Scheme">For authorization, the scheme (e.g. "Bearer"); null otherwise.</param>
/// <param name="Sha256">SHA-256 hex of the credential itself (for authorization, of the part after the scheme).</param>
public sealed record RecordedCredential(
    [property: JsonPropertyName("header")] string Header,
    [property: JsonPropertyName("scheme")] string? Scheme,
    [property: JsonPropertyName("sha256")] string Sha256);
