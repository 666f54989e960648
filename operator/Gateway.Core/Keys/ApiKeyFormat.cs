using System.Security.Cryptography;

namespace Gateway.Core.Keys;

/// <summary>Key format: "tg-" followed by 43 base62 characters from a CSPRNG (≥ 256 bits).</summary>
public static class ApiKeyFormat
{
    public const string Prefix = "tg-";
    public const int RandomLength = 43;
    public const int Length = 46;
    /// <summary>Characters shown when a key is displayed: "tg-" plus six.</summary>
    public const int DisplayLength = 9;
    private const string Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>Generates a new key. 43 base62 chars carry 43·log2(62) ≈ 256.03 bits.</summary>
    public static string Generate()
    {
        // GetString with rejection sampling over the alphabet: uniform, no modulo bias.
        return Prefix + RandomNumberGenerator.GetString(Alphabet, RandomLength);
    }

    /// <summary>True when the text has the shape of a TokenGate key (does not prove it is valid).</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> key)
    {
        if (key.Length != Length || !key.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        foreach (var c in key[Prefix.Length..])
        {
            if (!char.IsAsciiLetterOrDigit(c)) return false;
        }
        return true;
    }

    /// <summary>The part of a key that may be shown: "tg-" and six characters.</summary>
    public static string DisplayPrefix(string key) => key.Length >= DisplayLength ? key[..DisplayLength] : key;
}
