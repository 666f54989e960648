using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Auth;

/// <summary>Finds the client's key: <c>Authorization: Bearer</c>, <c>x-api-key</c> (Anthropic) or <c>api-key</c> (Azure).</summary>
public static class ApiKeyExtractor
{
    /// <summary>The key's characters (a slice of the header value, no copy), or empty when none was sent.</summary>
    public static ReadOnlySpan<char> Extract(IHeaderDictionary headers)
    {
        var authorization = headers.Authorization;
        if (authorization.Count > 0)
        {
            var value = (authorization[0] ?? "").AsSpan().Trim();
            if (value.Length > 7 && value[..7].Equals("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                var key = value[7..].Trim();
                if (!key.IsEmpty) return key;
            }
        }
        var apiKey = headers["x-api-key"];
        if (apiKey.Count > 0 && !string.IsNullOrWhiteSpace(apiKey[0])) return apiKey[0].AsSpan().Trim();
        var azure = headers["api-key"];
        if (azure.Count > 0 && !string.IsNullOrWhiteSpace(azure[0])) return azure[0].AsSpan().Trim();
        return default;
    }
}
