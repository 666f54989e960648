namespace Gateway.Proxy.Requests;

/// <summary>Which API dialect a route speaks: decides error shapes, usage fields and upstream auth style.</summary>
public enum ApiDialect : byte
{
    OpenAI,
    Anthropic,
}

/// <summary>How a route's usage is reported by the upstream.</summary>
public enum UsageFormat : byte
{
    /// <summary>prompt_tokens / completion_tokens (chat, completions, embeddings).</summary>
    OpenAIChat,
    /// <summary>input_tokens / output_tokens including cached (Responses API).</summary>
    OpenAIResponses,
    /// <summary>input_tokens excluding cache reads, cache_read/creation_input_tokens (Messages API).</summary>
    Anthropic,
    /// <summary>No usage (count_tokens): not charged.</summary>
    None,
}

/// <summary>One proxied endpoint: its metric label, dialect and the path appended to the upstream base URL.</summary>
public sealed class ProxyRoute
{
    /// <summary>How many routes exist (<see cref="Ordinal"/> is below it).</summary>
    internal const int Count = 7;

    private ProxyRoute(int ordinal, string name, ApiDialect dialect, UsageFormat usage, string upstreamPath, bool forceIncludeUsage, bool claudeCode = false)
    {
        Ordinal = ordinal; Name = name; Dialect = dialect; Usage = usage; UpstreamPath = upstreamPath; ForceIncludeUsage = forceIncludeUsage; ClaudeCode = claudeCode;
    }

    /// <summary>Dense index of the route, for per-route caches (e.g. an upstream target's URIs).</summary>
    internal int Ordinal { get; }
    /// <summary>Bounded metric label and usage-row route.</summary>
    public string Name { get; }
    public ApiDialect Dialect { get; }
    public UsageFormat Usage { get; }
    /// <summary>Path after the provider's "/v1" base, e.g. "/chat/completions".</summary>
    public string UpstreamPath { get; }
    /// <summary>Streaming requests get stream_options.include_usage forced so usage can be metered.</summary>
    public bool ForceIncludeUsage { get; }
    /// <summary>The Claude Code compatibility prefix: message_start's input tokens are corrected.</summary>
    public bool ClaudeCode { get; }
    public bool Metered => Usage != UsageFormat.None;

    public static readonly ProxyRoute ChatCompletions = new(0, "chat_completions", ApiDialect.OpenAI, UsageFormat.OpenAIChat, "/chat/completions", true);
    public static readonly ProxyRoute Completions = new(1, "completions", ApiDialect.OpenAI, UsageFormat.OpenAIChat, "/completions", true);
    public static readonly ProxyRoute Embeddings = new(2, "embeddings", ApiDialect.OpenAI, UsageFormat.OpenAIChat, "/embeddings", false);
    public static readonly ProxyRoute Responses = new(3, "responses", ApiDialect.OpenAI, UsageFormat.OpenAIResponses, "/responses", false);
    public static readonly ProxyRoute Messages = new(4, "messages", ApiDialect.Anthropic, UsageFormat.Anthropic, "/messages", false);
    public static readonly ProxyRoute CountTokens = new(5, "count_tokens", ApiDialect.Anthropic, UsageFormat.None, "/messages/count_tokens", false);
    public static readonly ProxyRoute ClaudeCodeMessages = new(6, "cc_messages", ApiDialect.Anthropic, UsageFormat.Anthropic, "/messages", false, claudeCode: true);
}
