using System.Security.Cryptography;
using Gateway.Core.Projection;
using Gateway.Core.Security;

namespace Gateway.Testing;

/// <summary>
/// The upstream credential key ring test hosts run with, as production does (operator and proxy share it):
/// one random key per test process, so a credential sealed by one host opens in another of the same test.
/// </summary>
public static class TestCredentialKeys
{
    public const string KeyId = "test-1";

    /// <summary>32 random bytes in base64.</summary>
    public static readonly string Key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(CredentialProtector.KeyLength));

    /// <summary>The same ring as an object, e.g. to seal a credential the way the operator does.</summary>
    public static CredentialProtector Protector { get; } = new(new Dictionary<string, byte[]> { [KeyId] = Convert.FromBase64String(Key) }, KeyId);

    /// <summary>Configuration entries (in-memory configuration).</summary>
    public static IReadOnlyDictionary<string, string?> Settings { get; } = new Dictionary<string, string?>
    {
        [CredentialKeyConfiguration.KeysSetting + ":" + KeyId] = Key,
        [CredentialKeyConfiguration.ActiveKeySetting] = KeyId,
    };

    /// <summary>Command-line arguments.</summary>
    public static string[] Args => ["--" + CredentialKeyConfiguration.KeysSetting + ":" + KeyId, Key, "--" + CredentialKeyConfiguration.ActiveKeySetting, KeyId];

    /// <summary>Environment variables for a child process.</summary>
    public static IReadOnlyDictionary<string, string> Environment { get; } = new Dictionary<string, string>
    {
        ["TokenGate__Credentials__Keys__" + KeyId] = Key,
        ["TokenGate__Credentials__ActiveKey"] = KeyId,
    };

    /// <summary>
    /// The credential of an account as read from Redis, decrypted with the test ring; fails when the account
    /// carries its credential in plaintext or the envelope does not open for this account.
    /// </summary>
    public static string? Open(UpstreamProjection stored)
    {
        ArgumentNullException.ThrowIfNull(stored);
        if (stored.Credential is not null) throw new InvalidOperationException($"Upstream account {stored.Name} holds its credential in plaintext.");
        if (stored.EncryptedCredential is null) return null;
        if (!Protector.TryUnprotect(stored.EncryptedCredential, stored.Name, out var plaintext, out var failure, out var keyId))
            throw new InvalidOperationException($"The credential of {stored.Name} (key {keyId}) does not open: {failure}.");
        return plaintext;
    }

    /// <summary>Writes the ring as a mounted Secret would look (one file per key id) and returns the folder.</summary>
    public static string WriteDirectory(string parent)
    {
        var dir = Path.Combine(parent, "credential-keys");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, KeyId), Key);
        return dir;
    }
}
