using Gateway.MockUpstream.Requests;
using Gateway.MockUpstream.Responses;

namespace Gateway.MockUpstream.Hosting;

/// <summary>Token counts of one reply, by kind, before they are put in a provider's usage shape.</summary>
/// <param name="Input">Uncached input tokens: <see cref="Tokens.MockTokenizer"/>'s count of the request.</param>
/// <param name="CachedRead">x-mock-cached-tokens.</param>
/// <param name="CacheWrite">x-mock-cache-write-tokens (reported by Anthropic only).</param>
/// <param name="Output">Visible reply tokens.</param>
/// <param name="Reasoning">x-mock-reasoning-tokens (counted inside output, as providers do).</param>
internal readonly record struct MockUsage(int Input, int CachedRead, int CacheWrite, int Output, int Reasoning)
{
    /// <summary>OpenAI's prompt_tokens / input_tokens: cached tokens are part of it.</summary>
    public int OpenAIPrompt => Input + CachedRead;

    /// <summary>OpenAI's completion_tokens, Anthropic's output_tokens: reasoning is part of it.</summary>
    public int TotalOutput => Output + Reasoning;
}

/// <summary>One request on its way through an endpoint: the parsed body, the controls and the reply to give.</summary>
internal sealed class MockCall
{
    private static long s_counter;

    public MockCall(HttpContext context, MockRequest request, in MockControls controls, ApiFamily family, string model)
    {
        Context = context;
        Request = request;
        Controls = controls;
        Family = family;
        Model = model;
        Number = Interlocked.Increment(ref s_counter);
        Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var requested = controls.OutputTokens ?? Tokens.MockReply.DefaultOutputTokens;
        if (request.MaxTokens is { } max && max < requested)
        {
            OutputTokens = max;
            Truncated = true;
        }
        else
        {
            OutputTokens = requested;
        }
        Usage = new MockUsage(request.InputTokens, controls.CachedTokens, controls.CacheWriteTokens, OutputTokens, controls.ReasoningTokens);
    }

    public HttpContext Context { get; }
    public MockRequest Request { get; }
    public MockControls Controls { get; }
    public ApiFamily Family { get; }
    /// <summary>The request's model (Azure: the deployment when the body has none), echoed in replies.</summary>
    public string Model { get; }
    /// <summary>Unique per process; makes ids like chatcmpl-mock-0000002a.</summary>
    public long Number { get; }
    public long Created { get; }
    public int OutputTokens { get; }
    /// <summary>The reply was cut short by the request's max tokens (finish_reason "length").</summary>
    public bool Truncated { get; }
    public MockUsage Usage { get; }
    public bool ReportUsage => !Controls.NoUsage;

    public string Id(string prefix) => string.Create(null, stackalloc char[64], $"{prefix}{Number:x8}");
}
