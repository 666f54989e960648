using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Security;

/// <summary>Why a stored credential could not be decrypted.</summary>
public enum CredentialFailure
{
    None,
    /// <summary>The envelope names a key id this process was not given (rotation not rolled out yet, or a removed key).</summary>
    UnknownKey,
    /// <summary>Not a v1 envelope, or authentication failed: altered, truncated, or written for another account.</summary>
    Invalid,
}

/// <summary>
/// Encrypts upstream credentials for the Redis projection with AES-256-GCM under a key ring shared by the
/// operator (which encrypts with the active key) and the proxy (which decrypts with any key of the ring, so a
/// new key can be rolled out before it becomes active). Envelope: <c>v1:&lt;keyId&gt;:&lt;base64(nonce|ciphertext|tag)&gt;</c>.
/// The account name ("namespace/name") is the associated data, so a ciphertext copied to another account fails.
/// Key material never leaves this type: no member returns or formats a key.
/// </summary>
public sealed class CredentialProtector
{
    public const string Version = "v1";
    public const int KeyLength = 32;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const int MaxKeyIdLength = 64;

    private readonly Dictionary<string, byte[]> _keys;

    /// <param name="keys">Key id → 32-byte key. Ids are letters, digits, '-', '_' and '.'.</param>
    /// <param name="activeKeyId">The key new credentials are encrypted with; null only for a ring without keys.</param>
    /// <param name="allowPlaintext">Development only: with no keys, credentials are stored unencrypted.</param>
    public CredentialProtector(IReadOnlyDictionary<string, byte[]> keys, string? activeKeyId, bool allowPlaintext = false)
    {
        ArgumentNullException.ThrowIfNull(keys);
        _keys = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (id, key) in keys)
        {
            if (!IsValidKeyId(id)) throw new ArgumentException($"Credential key id '{id}' is invalid: use 1-{MaxKeyIdLength} letters, digits, '-', '_' or '.'.", nameof(keys));
            if (key is null || key.Length != KeyLength)
                throw new ArgumentException($"Credential key '{id}' must be {KeyLength} bytes (256 bits) encoded as base64; it is {key?.Length ?? 0} bytes.", nameof(keys));
            _keys[id] = (byte[])key.Clone();
        }
        if (_keys.Count > 0)
        {
            if (string.IsNullOrEmpty(activeKeyId))
                throw new ArgumentException($"No active credential key: set TokenGate:Credentials:ActiveKey to one of the configured key ids ({string.Join(", ", KeyIds)}).", nameof(activeKeyId));
            if (!_keys.ContainsKey(activeKeyId))
                throw new ArgumentException($"The active credential key '{activeKeyId}' is not among the configured keys ({string.Join(", ", KeyIds)}).", nameof(activeKeyId));
            ActiveKeyId = activeKeyId;
        }
        else if (!allowPlaintext)
        {
            throw new ArgumentException("No credential encryption key configured.", nameof(keys));
        }
        AllowPlaintext = allowPlaintext;
    }

    /// <summary>The key new credentials are encrypted with; null when running without keys (development).</summary>
    public string? ActiveKeyId { get; }

    /// <summary>True when credentials may be stored in plaintext because no key is configured (development setting).</summary>
    public bool AllowPlaintext { get; }

    /// <summary>True when an active key is configured.</summary>
    public bool CanEncrypt => ActiveKeyId is not null;

    /// <summary>Ids of every key accepted for decryption, sorted.</summary>
    public IReadOnlyList<string> KeyIds => [.. _keys.Keys.Order(StringComparer.Ordinal)];

    /// <summary>A ring without keys that stores credentials in plaintext (development only).</summary>
    public static CredentialProtector Plaintext() => new(new Dictionary<string, byte[]>(), null, allowPlaintext: true);

    public static bool IsValidKeyId(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxKeyIdLength) return false;
        foreach (var c in id)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) return false;
        }
        return id[0] != '.';
    }

    /// <summary>True when <paramref name="value"/> has the shape of an envelope (it may still fail to decrypt).</summary>
    public static bool IsEnvelope([NotNullWhen(true)] string? value) =>
        value is not null && value.StartsWith(Version + ":", StringComparison.Ordinal) && value.IndexOf(':', Version.Length + 1) > Version.Length + 1;

    /// <summary>The key id an envelope names, or null when it is not an envelope.</summary>
    public static string? KeyIdOf(string? envelope)
    {
        if (!IsEnvelope(envelope)) return null;
        var end = envelope.IndexOf(':', Version.Length + 1);
        return envelope[(Version.Length + 1)..end];
    }

    /// <summary>Encrypts <paramref name="plaintext"/> for <paramref name="account"/> with the active key.</summary>
    /// <exception cref="InvalidOperationException">No key is configured.</exception>
    public string Protect(string plaintext, string account)
    {
        ArgumentNullException.ThrowIfNull(plaintext);
        ArgumentException.ThrowIfNullOrEmpty(account);
        if (ActiveKeyId is null) throw new InvalidOperationException("No credential encryption key is configured.");
        var data = Encoding.UTF8.GetBytes(plaintext);
        var sealedBytes = new byte[NonceLength + data.Length + TagLength];
        var nonce = sealedBytes.AsSpan(0, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        try
        {
            using var gcm = new AesGcm(_keys[ActiveKeyId], TagLength);
            gcm.Encrypt(nonce, data, sealedBytes.AsSpan(NonceLength, data.Length), sealedBytes.AsSpan(NonceLength + data.Length, TagLength), Encoding.UTF8.GetBytes(account));
            return string.Concat(Version, ":", ActiveKeyId, ":", Convert.ToBase64String(sealedBytes));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
        }
    }

    /// <summary>
    /// Decrypts an envelope written for <paramref name="account"/>. Returns false, with the reason and the
    /// envelope's key id (when it has one), if the key is unknown or the envelope does not authenticate.
    /// </summary>
    public bool TryUnprotect(string envelope, string account, [NotNullWhen(true)] out string? plaintext, out CredentialFailure failure, out string? keyId)
    {
        plaintext = null;
        keyId = KeyIdOf(envelope);
        if (keyId is null || account is null)
        {
            failure = CredentialFailure.Invalid;
            return false;
        }
        if (!_keys.TryGetValue(keyId, out var key))
        {
            failure = CredentialFailure.UnknownKey;
            return false;
        }
        byte[] sealedBytes;
        try
        {
            sealedBytes = Convert.FromBase64String(envelope[(Version.Length + 1 + keyId.Length + 1)..]);
        }
        catch (FormatException)
        {
            failure = CredentialFailure.Invalid;
            return false;
        }
        if (sealedBytes.Length < NonceLength + TagLength)
        {
            failure = CredentialFailure.Invalid;
            return false;
        }
        var length = sealedBytes.Length - NonceLength - TagLength;
        var data = new byte[length];
        try
        {
            using var gcm = new AesGcm(key, TagLength);
            gcm.Decrypt(sealedBytes.AsSpan(0, NonceLength), sealedBytes.AsSpan(NonceLength, length), sealedBytes.AsSpan(NonceLength + length, TagLength), data, Encoding.UTF8.GetBytes(account));
            plaintext = Encoding.UTF8.GetString(data);
            failure = CredentialFailure.None;
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            failure = CredentialFailure.Invalid;
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
        }
    }
}
