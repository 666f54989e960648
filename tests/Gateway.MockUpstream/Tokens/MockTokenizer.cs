using System.Buffers;
using Gateway.MockUpstream.Requests;

namespace Gateway.MockUpstream.Tokens;

/// <summary>
/// The mock's deterministic token count: one token per whitespace-separated word of text, plus 3 per
/// message (or other text item). Tests use it to compute the usage the mock will report.
/// </summary>
/// <remarks>
/// Words are counted on text content only (never on JSON syntax, model names or options), so a proxy
/// that rewrites the body (model mapping, forcing stream_options) does not change the count.
/// Whitespace is ASCII space, tab, CR, LF, FF and VT, nothing else, on both the UTF-8 and string paths.
/// </remarks>
public static class MockTokenizer
{
    /// <summary>Tokens added for every message or text item on top of its words.</summary>
    public const int PerMessageOverhead = 3;

    /// <summary>Input tokens for messages (or prompt / input strings), each given as its full text.</summary>
    public static int Count(params string[] messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var total = 0;
        foreach (var m in messages) total += PerMessageOverhead + CountWords(m);
        return total;
    }

    /// <summary>Input tokens the mock reports for this request body (the JSON sent to any of its endpoints).</summary>
    public static int Count(ReadOnlySpan<byte> requestJson) =>
        MockRequest.Parse(new ReadOnlySequence<byte>(requestJson.ToArray())).InputTokens;

    /// <summary>Whitespace-separated words in <paramref name="text"/>.</summary>
    public static int CountWords(string? text)
    {
        if (string.IsNullOrEmpty(text)) return 0;
        var words = 0;
        var inWord = false;
        foreach (var c in text)
        {
            if (IsSpace(c)) inWord = false;
            else if (!inWord) { inWord = true; words++; }
        }
        return words;
    }

    /// <summary>Whitespace-separated words in UTF-8 text.</summary>
    public static int CountWords(ReadOnlySpan<byte> utf8)
    {
        var words = 0;
        var inWord = false;
        foreach (var b in utf8)
        {
            if (IsSpace(b)) inWord = false;
            else if (!inWord) { inWord = true; words++; }
        }
        return words;
    }

    private static bool IsSpace(int c) => c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v';
}
