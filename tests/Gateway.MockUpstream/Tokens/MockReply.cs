using System.Text;
using System.Text.Json;

namespace Gateway.MockUpstream.Tokens;

/// <summary>
/// The fixed reply: the words of <see cref="Sentence"/> repeated, one word per output token, joined by
/// single spaces. Precomputed once so a response never builds strings.
/// </summary>
public static class MockReply
{
    /// <summary>The sentence the reply repeats.</summary>
    public const string Sentence = "This is a mock response from the TokenGate mock upstream.";

    /// <summary>Output tokens when the request does not say (header <c>x-mock-output-tokens</c>).</summary>
    public const int DefaultOutputTokens = 12;

    /// <summary>Longest reply served from the precomputed text; longer ones are built on demand.</summary>
    internal const int PrecomputedTokens = 8192;

    private static readonly string[] s_words = Sentence.Split(' ');

    // Streaming pieces: piece 0 has no leading space, later ones do (" is", " a", ...).
    private static readonly JsonEncodedText[] s_firstPieces = Encode(s_words, "");
    private static readonly JsonEncodedText[] s_nextPieces = Encode(s_words, " ");

    private static readonly byte[] s_text = Encoding.UTF8.GetBytes(Build(PrecomputedTokens));
    private static readonly int[] s_offsets = ComputeOffsets();

    /// <summary>The reply text for <paramref name="tokens"/> output tokens.</summary>
    public static string Text(int tokens) => tokens <= PrecomputedTokens
        ? Encoding.UTF8.GetString(Utf8(tokens))
        : Build(tokens);

    /// <summary>The reply as UTF-8, without allocating when within the precomputed length.</summary>
    internal static ReadOnlySpan<byte> Utf8(int tokens) => tokens <= PrecomputedTokens
        ? s_text.AsSpan(0, s_offsets[tokens])
        : Encoding.UTF8.GetBytes(Build(tokens));

    /// <summary>The text streamed for output token <paramref name="index"/> (0-based).</summary>
    internal static JsonEncodedText Piece(int index) =>
        index == 0 ? s_firstPieces[0] : s_nextPieces[index % s_words.Length];

    private static string Build(int tokens)
    {
        var sb = new StringBuilder(tokens * 6);
        for (var i = 0; i < tokens; i++)
        {
            if (i > 0) sb.Append(' ');
            sb.Append(s_words[i % s_words.Length]);
        }
        return sb.ToString();
    }

    private static int[] ComputeOffsets()
    {
        var offsets = new int[PrecomputedTokens + 1];
        var len = 0;
        for (var i = 0; i < PrecomputedTokens; i++)
        {
            len += (i > 0 ? 1 : 0) + Encoding.UTF8.GetByteCount(s_words[i % s_words.Length]);
            offsets[i + 1] = len;
        }
        return offsets;
    }

    private static JsonEncodedText[] Encode(string[] words, string prefix)
    {
        var result = new JsonEncodedText[words.Length];
        for (var i = 0; i < words.Length; i++) result[i] = JsonEncodedText.Encode(prefix + words[i]);
        return result;
    }
}
