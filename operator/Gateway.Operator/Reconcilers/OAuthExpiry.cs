using System.Globalization;
using System.Text.Json;

namespace Gateway.Operator.Reconcilers;

/// <summary>
/// Reads when an OAuth access token expires from the auth JSON of an UpstreamAccount's Secret: "expired"
/// (CLIProxyAPI / Codex auth files, RFC 3339), "expiry" (RFC 3339) or "expires_at" (RFC 3339, or unix seconds).
/// </summary>
public static class OAuthExpiry
{
    private static readonly string[] Fields = ["expired", "expiry", "expires_at"];

    public static DateTimeOffset? Read(JsonElement auth)
    {
        if (auth.ValueKind != JsonValueKind.Object) return null;
        foreach (var field in Fields)
        {
            if (!auth.TryGetProperty(field, out var v)) continue;
            if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var seconds) && seconds > 0)
                return DateTimeOffset.FromUnixTimeSeconds(seconds);
            if (v.ValueKind == JsonValueKind.String)
            {
                var text = v.GetString();
                if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at)) return at.ToUniversalTime();
                if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0) return DateTimeOffset.FromUnixTimeSeconds(s);
            }
        }
        return null;
    }
}
