namespace Gateway.Core.Totp;

/// <summary>RFC 4648 base32 (alphabet A–Z, 2–7), written without padding as authenticator apps expect.</summary>
public static class Base32
{
    private const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// <summary>Encodes <paramref name="data"/> as upper-case base32 without '=' padding.</summary>
    public static string Encode(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return "";
        var length = (data.Length * 8 + 4) / 5;
        return string.Create(length, data.ToArray(), static (chars, bytes) =>
        {
            int buffer = 0, bits = 0, o = 0;
            foreach (var b in bytes)
            {
                buffer = (buffer << 8) | b;
                bits += 8;
                while (bits >= 5)
                {
                    bits -= 5;
                    chars[o++] = Alphabet[(buffer >> bits) & 31];
                }
            }
            if (bits > 0) chars[o] = Alphabet[(buffer << (5 - bits)) & 31];
        });
    }

    /// <summary>
    /// Decodes base32; accepts lower case, trailing '=' padding and spaces or hyphens between groups
    /// (people copy secrets by hand). Returns false on any other character or on non-zero trailing bits.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<char> text, out byte[] data)
    {
        data = [];
        var output = new byte[text.Length * 5 / 8];
        int buffer = 0, bits = 0, o = 0;
        var padding = false;
        foreach (var c in text)
        {
            if (c is ' ' or '-') continue;
            if (c == '=') { padding = true; continue; }
            if (padding) return false;
            int v = c switch
            {
                >= 'A' and <= 'Z' => c - 'A',
                >= 'a' and <= 'z' => c - 'a',
                >= '2' and <= '7' => c - '2' + 26,
                _ => -1,
            };
            if (v < 0) return false;
            buffer = (buffer << 5) | v;
            bits += 5;
            if (bits >= 8)
            {
                bits -= 8;
                output[o++] = (byte)(buffer >> bits);
            }
            buffer &= (1 << bits) - 1;
        }
        // Leftover bits must be zero padding; anything else is a truncated or corrupt secret.
        if (bits >= 5 || buffer != 0) return false;
        data = o == output.Length ? output : output.AsSpan(0, o).ToArray();
        return true;
    }

    /// <summary>Decodes base32 or throws <see cref="FormatException"/>.</summary>
    public static byte[] Decode(ReadOnlySpan<char> text) =>
        TryDecode(text, out var data) ? data : throw new FormatException("The value is not valid base32 (RFC 4648: letters A-Z and digits 2-7).");
}
