using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Gateway.Operator.Accounts;

/// <summary>
/// One OAuth subscription account read from a CLIProxyAPI or Codex CLI auth file, normalized to the flat
/// CLIProxyAPI shape. Holds tokens: <see cref="ToString"/> names the account and file, never a token.
/// </summary>
public sealed record ImportedAccount(
    string SourceFile,
    string Type,
    string? Email,
    string? AccountId,
    string AccessToken,
    string RefreshToken,
    string? IdToken,
    DateTimeOffset? Expired,
    DateTimeOffset? LastRefresh)
{
    /// <summary>The Secret data key that holds <see cref="ToAuthJson"/> in generated Secrets.</summary>
    public const string SecretKey = "auth.json";

    /// <summary>Who the account is, for messages: the e-mail address, else the account id.</summary>
    public string Identity => Email ?? AccountId ?? "";

    /// <summary>
    /// The auth JSON written into the Secret: flat CLIProxyAPI fields (type, email, account_id, access_token,
    /// refresh_token, id_token, expired, last_refresh; absent ones left out), which is what the operator
    /// reads (top-level access_token, expiry from "expired") and what a refresh writes back.
    /// </summary>
    public string ToAuthJson()
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("type", Type);
            if (Email is not null) w.WriteString("email", Email);
            if (AccountId is not null) w.WriteString("account_id", AccountId);
            w.WriteString("access_token", AccessToken);
            w.WriteString("refresh_token", RefreshToken);
            if (IdToken is not null) w.WriteString("id_token", IdToken);
            if (Expired is { } e) w.WriteString("expired", Rfc3339(e));
            if (LastRefresh is { } r) w.WriteString("last_refresh", Rfc3339(r));
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray()) + "\n";
    }

    public static string Rfc3339(DateTimeOffset at) => at.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Never the tokens: records would otherwise print every member.</summary>
    public override string ToString() => $"{Type} account {Identity} ({SourceFile})";
}
