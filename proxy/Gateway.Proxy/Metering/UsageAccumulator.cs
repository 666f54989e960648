using Gateway.Core.Usage;
using Gateway.Proxy.Requests;

namespace Gateway.Proxy.Metering;

/// <summary>
/// Usage fields as the upstream reported them, merged over events (a later value overrides an earlier
/// one: Anthropic's message_delta carries the cumulative output count). -1 means "not reported".
/// </summary>
public struct UsageAccumulator
{
    public long InputTokens;       // prompt_tokens / input_tokens
    public long OutputTokens;      // completion_tokens / output_tokens
    public long CachedTokens;      // *_tokens_details.cached_tokens / cache_read_input_tokens
    public long CacheWriteTokens;  // cache_creation_input_tokens
    /// <summary>True once any usage object with a token count was seen.</summary>
    public bool Seen;
    /// <summary>Bytes of generated text seen (content, text, arguments …), for estimation when usage is missing.</summary>
    public long OutputTextBytes;

    public static UsageAccumulator Create() => new() { InputTokens = -1, OutputTokens = -1, CachedTokens = -1, CacheWriteTokens = -1 };

    /// <summary>Tokens by kind. OpenAI's prompt/input counts include cached tokens; Anthropic's exclude them.</summary>
    public readonly TokenCounts ToTokenCounts(UsageFormat format)
    {
        var input = Math.Max(0, InputTokens);
        var cached = Math.Max(0, CachedTokens);
        var cacheWrite = Math.Max(0, CacheWriteTokens);
        var output = Math.Max(0, OutputTokens);
        if (format == UsageFormat.Anthropic) return new TokenCounts(input, cached, cacheWrite, output);
        return new TokenCounts(Math.Max(0, input - cached - cacheWrite), cached, cacheWrite, output);
    }
}
