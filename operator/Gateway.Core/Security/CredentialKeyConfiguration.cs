using System.Security.Cryptography;
using Gateway.Core.Hosting;
using Microsoft.Extensions.Configuration;

namespace Gateway.Core.Security;

/// <summary>
/// Reads the credential key ring shared by the operator and the proxy from configuration:
/// <c>TokenGate:Credentials:KeysDirectory</c> (a mounted Secret: one file per key id holding 32 random bytes in
/// base64, and optionally a file <c>active</c> naming the active key id), <c>TokenGate:Credentials:Keys:&lt;id&gt;</c>
/// (base64), <c>TokenGate:Credentials:ActiveKey</c> (needed when there are several keys; overrides the file) and
/// <c>TokenGate:Credentials:AllowPlaintext</c> (development only: no key, credentials stored in plaintext).
/// Problems name the setting and never include key material.
/// </summary>
public static class CredentialKeyConfiguration
{
    public const string Section = "TokenGate:Credentials";
    public const string KeysDirectorySetting = Section + ":KeysDirectory";
    public const string KeysSetting = Section + ":Keys";
    public const string ActiveKeySetting = Section + ":ActiveKey";
    public const string AllowPlaintextSetting = Section + ":AllowPlaintext";
    /// <summary>File in the keys directory that names the active key id.</summary>
    public const string ActiveFileName = "active";

    /// <summary>Loads the ring, adding one problem per wrong setting; null when anything is wrong.</summary>
    public static CredentialProtector? Load(IConfiguration config, ConfigurationProblems problems)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(problems);
        var before = problems.Messages.Count;
        var keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        string? activeFromFile = null;

        var directory = config[KeysDirectorySetting];
        if (!string.IsNullOrWhiteSpace(directory))
        {
            if (!Directory.Exists(directory))
            {
                problems.Add($"{KeysDirectorySetting} '{directory}' is not a readable folder (mount the credential keys Secret there).");
            }
            else
            {
                try
                {
                    foreach (var file in Directory.EnumerateFiles(directory).Order(StringComparer.Ordinal))
                    {
                        var id = Path.GetFileName(file);
                        // Kubernetes Secret volumes add hidden "..data" links; only the items count.
                        if (id.StartsWith('.')) continue;
                        var text = File.ReadAllText(file).Trim();
                        if (id == ActiveFileName) { activeFromFile = text; continue; }
                        Add(keys, id, text, $"{KeysDirectorySetting} file '{id}'", problems);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    problems.Add($"{KeysDirectorySetting} '{directory}' cannot be read: {e.Message}");
                }
            }
        }

        foreach (var child in config.GetSection(KeysSetting).GetChildren())
        {
            if (string.IsNullOrWhiteSpace(child.Value)) continue;
            if (keys.ContainsKey(child.Key))
            {
                problems.Add($"Credential key '{child.Key}' is set both in {KeysDirectorySetting} and in {KeysSetting}:{child.Key}; keep one.");
                continue;
            }
            Add(keys, child.Key, child.Value.Trim(), $"{KeysSetting}:{child.Key}", problems);
        }

        var allowPlaintext = false;
        var allowText = config[AllowPlaintextSetting];
        if (!string.IsNullOrWhiteSpace(allowText) && !bool.TryParse(allowText, out allowPlaintext))
            problems.Add($"{AllowPlaintextSetting} must be true or false.");

        var active = config[ActiveKeySetting];
        if (string.IsNullOrWhiteSpace(active)) active = activeFromFile;
        if (string.IsNullOrWhiteSpace(active) && keys.Count == 1) active = keys.Keys.Single();

        if (problems.Messages.Count > before) return null;
        if (keys.Count == 0)
        {
            if (allowPlaintext) return CredentialProtector.Plaintext();
            problems.Add("No credential encryption key configured, so upstream credentials would be stored in Redis in plaintext. "
                + $"Set {KeysDirectorySetting} (a mounted Secret: one file per key id holding 32 random bytes in base64) or {KeysSetting}:<id> "
                + $"(e.g. `head -c 32 /dev/urandom | base64`), the same in the operator and the proxy; for development only, {AllowPlaintextSetting}=true.");
            return null;
        }
        if (string.IsNullOrWhiteSpace(active))
        {
            problems.Add($"{ActiveKeySetting} is not set and there are {keys.Count} credential keys ({string.Join(", ", keys.Keys.Order(StringComparer.Ordinal))}): name the one new credentials are encrypted with.");
            return null;
        }
        if (!keys.ContainsKey(active))
        {
            problems.Add($"{ActiveKeySetting} '{active}' is not one of the configured credential keys ({string.Join(", ", keys.Keys.Order(StringComparer.Ordinal))}).");
            return null;
        }
        try
        {
            return new CredentialProtector(keys, active, allowPlaintext);
        }
        finally
        {
            foreach (var k in keys.Values) CryptographicOperations.ZeroMemory(k);
        }
    }

    private static void Add(Dictionary<string, byte[]> keys, string id, string base64, string setting, ConfigurationProblems problems)
    {
        if (!CredentialProtector.IsValidKeyId(id))
        {
            problems.Add($"{setting}: '{id}' is not a valid credential key id (1-64 letters, digits, '-', '_' or '.'; not starting with '.').");
            return;
        }
        byte[] key;
        try
        {
            key = Convert.FromBase64String(base64);
        }
        catch (FormatException)
        {
            problems.Add($"{setting} is not valid base64 (expected 32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`).");
            return;
        }
        if (key.Length != CredentialProtector.KeyLength)
        {
            problems.Add($"{setting} must be {CredentialProtector.KeyLength} bytes (256 bits) in base64; it is {key.Length} bytes (e.g. `head -c 32 /dev/urandom | base64`).");
            CryptographicOperations.ZeroMemory(key);
            return;
        }
        keys[id] = key;
    }
}
