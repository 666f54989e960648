using System.Globalization;
using System.Text.Json;

namespace Gateway.Operator.Accounts;

/// <summary>An auth file that cannot be imported; the message names the file and the field, never a value.</summary>
public sealed record AuthFileError(string SourceFile, string Message)
{
    public override string ToString() => $"{SourceFile}: {Message}";
}

/// <summary>
/// Reads one auth file in either public format and normalizes it:
/// <list type="bullet">
/// <item>CLIProxyAPI (flat): <c>type, email, account_id, access_token, refresh_token, id_token, expired, last_refresh</c>;</item>
/// <item>Codex CLI <c>~/.codex/auth.json</c> (nested): <c>tokens: {id_token, access_token, refresh_token, account_id}</c>
/// with <c>last_refresh</c> (type codex unless the file says otherwise); a <c>token</c> object is read the same way.</item>
/// </list>
/// Missing e-mail, account id and expiry are taken from the id/access token's JWT claims when those are JWTs.
/// </summary>
public static partial class AuthFileReader
{
    /// <summary>Auth files are a few KiB; anything far bigger is not one (and is not read into memory whole).</summary>
    public const long MaxFileBytes = 1024 * 1024;

    private static readonly string[] ExpiryFields = ["expired", "expiry", "expires_at"];

    /// <summary>Reads <paramref name="path"/>; <paramref name="displayName"/> is how messages name it.</summary>
    public static (ImportedAccount? Account, AuthFileError? Error) ReadFile(string path, string displayName, string? defaultType = null)
    {
        byte[] content;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) return (null, new AuthFileError(displayName, "file not found."));
            if (info.Length > MaxFileBytes) return (null, new AuthFileError(displayName, $"is larger than {MaxFileBytes / 1024} KiB: not an auth file."));
            content = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return (null, new AuthFileError(displayName, $"cannot be read ({e.GetType().Name})."));
        }
        return Read(content, displayName, defaultType);
    }

    public static (ImportedAccount? Account, AuthFileError? Error) Read(ReadOnlySpan<byte> content, string displayName, string? defaultType = null)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(content.ToArray(), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            // The exception's own message can quote the offending characters (a token's, say): only the position is shown.
            return (null, new AuthFileError(displayName, $"is not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})."));
        }
        using (doc)
        {
            try
            {
                return (Normalize(doc.RootElement, displayName, defaultType), null);
            }
            catch (AuthFileException e)
            {
                return (null, new AuthFileError(displayName, e.Message));
            }
        }
    }

    private static ImportedAccount Normalize(JsonElement root, string file, string? defaultType)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new AuthFileException("is not a JSON object: an auth file is one object with the token fields.");

        // Codex CLI nests the tokens under "tokens" (Gemini-style files under "token"); CLIProxyAPI keeps them at the top.
        JsonElement? nested = null;
        foreach (var name in (string[])["tokens", "token"])
        {
            if (root.TryGetProperty(name, out var t) && t.ValueKind == JsonValueKind.Object) { nested = t; break; }
        }
        if (nested is null && root.TryGetProperty("tokens", out var nullTokens) && nullTokens.ValueKind == JsonValueKind.Null
            && root.TryGetProperty("OPENAI_API_KEY", out var apiKey) && apiKey.ValueKind == JsonValueKind.String)
        {
            throw new AuthFileException("holds an OpenAI API key, not OAuth tokens: declare it with credentials.apiKeySecretRef instead.");
        }

        var accessToken = String(root, nested, "access_token") ?? throw Missing("access_token", "the token the proxy sends upstream");
        var refreshToken = String(root, nested, "refresh_token") ?? throw Missing("refresh_token", "the operator needs it to refresh the access token");
        var idToken = String(root, nested, "id_token");
        var idClaims = UnverifiedJwt.Payload(idToken);
        var accessClaims = UnverifiedJwt.Payload(accessToken);

        var type = String(root, nested, "type")?.Trim().ToLowerInvariant();
        if (type is null && (nested is not null && root.TryGetProperty("tokens", out _) || UnverifiedJwt.HasOpenAIAuthClaim(accessClaims) || UnverifiedJwt.HasOpenAIAuthClaim(idClaims)))
        {
            type = AccountDefaults.Codex; // ~/.codex/auth.json names no type; OpenAI's token claims say the same.
        }
        type ??= defaultType?.Trim().ToLowerInvariant();
        if (string.IsNullOrEmpty(type)) throw new AuthFileException("has no 'type' field (codex, claude, …): pass --type to say which kind of account it is.");
        if (!TypePattern().IsMatch(type)) throw new AuthFileException("field 'type' must be a short lower-case word such as codex or claude.");

        var email = String(root, nested, "email") ?? UnverifiedJwt.Email(idClaims) ?? UnverifiedJwt.Email(accessClaims);
        var accountId = String(root, nested, "account_id") ?? UnverifiedJwt.ChatGptAccountId(idClaims) ?? UnverifiedJwt.ChatGptAccountId(accessClaims);
        if (email is null && accountId is null)
            throw new AuthFileException("names no account: it needs 'email' or 'account_id' (or an id_token carrying them) to name and de-duplicate the account.");

        var expired = Timestamp(root, nested, ExpiryFields) ?? UnverifiedJwt.Expiry(accessClaims);
        var lastRefresh = Timestamp(root, nested, ["last_refresh"]);
        return new ImportedAccount(file, type, email?.Trim(), accountId?.Trim(), accessToken, refreshToken, idToken, expired, lastRefresh);
    }

    private static AuthFileException Missing(string field, string why) => new($"has no '{field}' ({why}).");

    private static string? String(JsonElement root, JsonElement? nested, string name)
    {
        foreach (var o in nested is { } n ? [n, root] : (JsonElement[])[root])
        {
            if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) continue;
            if (v.ValueKind != JsonValueKind.String) throw new AuthFileException($"field '{name}' must be a string.");
            return v.GetString() is { Length: > 0 } s && !string.IsNullOrWhiteSpace(s) ? s : null;
        }
        return null;
    }

    private static DateTimeOffset? Timestamp(JsonElement root, JsonElement? nested, string[] names)
    {
        foreach (var o in nested is { } n ? [n, root] : (JsonElement[])[root])
        {
            foreach (var name in names)
            {
                if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) continue;
                if (v.ValueKind == JsonValueKind.String && v.GetString() is { Length: 0 }) continue;
                return ParseTimestamp(v) ?? throw new AuthFileException($"field '{name}' is not a timestamp (RFC 3339, or unix seconds).");
            }
        }
        return null;
    }

    private static DateTimeOffset? ParseTimestamp(JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) && n > 0)
            return n > 100_000_000_000 ? DateTimeOffset.FromUnixTimeMilliseconds(n) : DateTimeOffset.FromUnixTimeSeconds(n);
        if (v.ValueKind != JsonValueKind.String) return null;
        var text = v.GetString()!;
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s > 0) return DateTimeOffset.FromUnixTimeSeconds(s);
        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at.ToUniversalTime() : null;
    }

    // A label value (the type is written into tokengate.io/account-type) and a name prefix.
    [System.Text.RegularExpressions.GeneratedRegex("^[a-z0-9]([-a-z0-9_.]{0,30}[a-z0-9])?$")]
    private static partial System.Text.RegularExpressions.Regex TypePattern();

    private sealed class AuthFileException(string message) : Exception(message);
}
