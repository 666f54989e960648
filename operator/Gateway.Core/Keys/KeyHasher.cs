using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Keys;

/// <summary>HMAC-SHA256(pepper, key), as lowercase hex. The pepper is a secret kept outside the database.</summary>
public sealed class KeyHasher
{
    private readonly byte[] _pepper;

    public KeyHasher(byte[] pepper)
    {
        ArgumentNullException.ThrowIfNull(pepper);
        if (pepper.Length < 16) throw new ArgumentException("The key pepper must be at least 16 bytes.", nameof(pepper));
        _pepper = (byte[])pepper.Clone();
    }

    /// <summary>Hex length of a hash.</summary>
    public const int HashHexLength = 64;

    public string Hash(ReadOnlySpan<char> key)
    {
        Span<byte> utf8 = stackalloc byte[256];
        if (key.Length > 256) throw new ArgumentException("Key too long.", nameof(key));
        var n = Encoding.UTF8.GetBytes(key, utf8);
        Span<byte> mac = stackalloc byte[32];
        HMACSHA256.HashData(_pepper, utf8[..n], mac);
        return Convert.ToHexStringLower(mac);
    }

    /// <summary>Constant-time comparison of two hex hashes.</summary>
    public static bool HashesEqual(string a, string b) =>
        CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(a), Encoding.ASCII.GetBytes(b));

    /// <summary>Loads the pepper from a file (Secret mount) or a literal value; file wins.</summary>
    public static KeyHasher FromConfiguration(string? pepper, string? pepperFile)
    {
        if (!string.IsNullOrEmpty(pepperFile))
        {
            if (!File.Exists(pepperFile)) throw new InvalidOperationException($"Key pepper file '{pepperFile}' does not exist. Set TokenGate:PepperFile to a readable file or TokenGate:Pepper.");
            var text = File.ReadAllText(pepperFile).Trim();
            return new KeyHasher(Encoding.UTF8.GetBytes(text));
        }
        if (!string.IsNullOrEmpty(pepper)) return new KeyHasher(Encoding.UTF8.GetBytes(pepper));
        throw new InvalidOperationException("No key pepper configured. Set TokenGate:PepperFile (a mounted Secret) or TokenGate:Pepper.");
    }
}
