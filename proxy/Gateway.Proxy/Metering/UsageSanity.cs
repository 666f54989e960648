using Gateway.Core.Usage;

namespace Gateway.Proxy.Metering;

/// <summary>
/// What an upstream reports is bounded by what the request could have used before it is charged, so a broken or
/// hostile upstream cannot bill a user for more than the request asked for, and a missing or invalid count (absent,
/// negative, not an integer) is estimated rather than charged as zero. Every adjustment marks the usage event
/// <c>estimated</c>, as usage the proxy had to estimate is marked today.
/// <list type="bullet">
/// <item>Prompt side (input + cached + cache writes) at most the request's bytes + <see cref="InputAllowance"/>: a
/// token is at least a byte of prompt text; the allowance covers images and files referenced by URL. Beyond it, or
/// when no input count was reported, input is estimated as a quarter of the request's bytes.</item>
/// <item>Output at most the request's max_tokens (max_completion_tokens, max_output_tokens) times its choices
/// (n / best_of); without a max, <see cref="OutputCapWithoutMax"/> per choice. A missing output count is estimated
/// from the generated text (four bytes a token).</item>
/// </list>
/// </summary>
public static class UsageSanity
{
    /// <summary>Prompt tokens allowed beyond the request's bytes (images or files referenced by URL).</summary>
    public const long InputAllowance = 100_000;

    /// <summary>Output tokens per choice allowed when the request sets no maximum (beyond any model's output today).</summary>
    public const long OutputCapWithoutMax = 1_000_000;

    /// <param name="usage">The counts as reported (-1 = not reported or invalid).</param>
    /// <param name="tokens">The counts derived from <paramref name="usage"/>.</param>
    /// <param name="requestBytes">Bytes of the request body sent upstream.</param>
    /// <param name="maxTokens">The request's output maximum, or -1.</param>
    /// <param name="choices">Completions per request (n / best_of), at least 1.</param>
    /// <param name="estimatedOutput">Output estimated from the generated text.</param>
    /// <param name="adjusted">True when anything was estimated or capped.</param>
    public static TokenCounts Bound(in UsageAccumulator usage, TokenCounts tokens, long requestBytes, long maxTokens, long choices,
        long estimatedOutput, out bool adjusted)
    {
        adjusted = false;
        var inputCap = Math.Max(0, requestBytes) + InputAllowance;
        var noInput = usage.InputTokens < 0 && usage.CachedTokens < 0 && usage.CacheWriteTokens < 0;
        if (noInput || Saturating(tokens.Input, tokens.CachedInput, tokens.CacheWrite) > inputCap)
        {
            tokens = tokens with { Input = Math.Max(1, requestBytes / 4), CachedInput = 0, CacheWrite = 0 };
            adjusted = true;
        }
        var perChoice = maxTokens > 0 ? maxTokens : OutputCapWithoutMax;
        var outputCap = perChoice > long.MaxValue / Math.Max(1, choices) ? long.MaxValue : perChoice * Math.Max(1, choices);
        if (usage.OutputTokens < 0 && estimatedOutput > 0)
        {
            tokens = tokens with { Output = Math.Min(estimatedOutput, outputCap) };
            adjusted = true;
        }
        else if (tokens.Output > outputCap)
        {
            tokens = tokens with { Output = outputCap };
            adjusted = true;
        }
        return tokens;
    }

    private static long Saturating(long a, long b, long c)
    {
        var sum = a + b;
        if (sum < a) return long.MaxValue;
        var total = sum + c;
        return total < sum ? long.MaxValue : total;
    }
}
