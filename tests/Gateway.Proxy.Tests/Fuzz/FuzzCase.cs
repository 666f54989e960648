using Gateway.Proxy.Requests;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>The hostile-input classes the generator draws from (docs/reliability.md has a section for each).</summary>
public enum FuzzClass
{
    Valid,
    MalformedJson,
    DeepNesting,
    HugeNumbers,
    HugeStrings,
    InvalidUtf8,
    DuplicateKeys,
    ContentType,
    OversizedBody,
    Auth,
    LabelExplosion,
    HeaderInjection,
    Method,
    Path,
    Framing,
    OversizedHeaders,
    BadHeaderBytes,
    TruncatedBody,
}

/// <summary>What a raw request is built from once the run is set up.</summary>
public sealed record RawContext(string Key, string Authority, string CaseId);

/// <summary>Which key a case presents.</summary>
public enum KeyMode
{
    Valid,
    Missing,
    Malformed,
    /// <summary>Well-formed (tg- + 43 base62) but never issued.</summary>
    Unknown,
    /// <summary>A real key whose ApiKey is disabled.</summary>
    Disabled,
    /// <summary>Two Authorization headers, the first one wrong.</summary>
    WrongThenValid,
}

/// <summary>A proxy route as the fuzzer sees it.</summary>
public sealed record FuzzRoute(string Path, string Method, ApiDialect? Dialect, string Kind)
{
    /// <summary>Routes whose error shape follows the anthropic-version header instead of the route.</summary>
    public bool DialectByHeader => Dialect is null;

    public static readonly FuzzRoute[] All =
    [
        new("/v1/chat/completions", "POST", ApiDialect.OpenAI, "chat"),
        new("/v1/completions", "POST", ApiDialect.OpenAI, "completions"),
        new("/v1/embeddings", "POST", ApiDialect.OpenAI, "embeddings"),
        new("/v1/responses", "POST", ApiDialect.OpenAI, "responses"),
        new("/v1/messages", "POST", ApiDialect.Anthropic, "messages"),
        new("/v1/messages/count_tokens", "POST", ApiDialect.Anthropic, "count_tokens"),
        new("/cc/v1/messages", "POST", ApiDialect.Anthropic, "messages"),
        new("/cc/v1/messages/count_tokens", "POST", ApiDialect.Anthropic, "count_tokens"),
        new("/v1/models", "GET", null, "models"),
        new("/cc/v1/models", "GET", null, "models"),
        new("/v1/usage", "GET", ApiDialect.OpenAI, "usage"),
    ];
}

/// <summary>
/// One generated request. Sent with HttpClient unless <see cref="Raw"/> is set (bytes on a bare socket). Every case
/// carries <see cref="UpstreamWitness.CaseHeader"/> so the upstream's record says which case reached it.
/// </summary>
public sealed class FuzzCase
{
    public required int Index { get; init; }
    public required FuzzClass Class { get; init; }
    public required FuzzRoute Route { get; init; }
    public required string Description { get; init; }
    public string Method { get; init; } = "POST";
    public string Path { get; init; } = "";
    public KeyMode Key { get; init; } = KeyMode.Valid;
    /// <summary>How the key is sent: authorization, x-api-key or api-key.</summary>
    public string KeyHeader { get; init; } = "authorization";
    public List<KeyValuePair<string, string>> Headers { get; } = [];
    /// <summary>Null: no Content-Type header at all.</summary>
    public string? ContentType { get; init; } = "application/json";
    public byte[]? Body { get; init; }
    public bool Chunked { get; init; }
    /// <summary>A whole request for the raw socket, made by <see cref="RawBuilder"/> once the key is known.</summary>
    public Func<RawContext, byte[]>? RawBuilder { get; init; }
    /// <summary>Shut the socket's sending side after the raw request (a body that ends early).</summary>
    public bool HalfClose { get; init; }
    /// <summary>Kestrel may refuse it before any route runs: a bare 4xx (no body) is then the expected answer.</summary>
    public bool ProtocolLevel { get; init; }
    /// <summary>The case carries canaries in headers that must never reach the upstream.</summary>
    public bool Injects { get; init; }
    /// <summary>When set the case is generated but not sent: the finding is known and not fixed yet.</summary>
    public string? Skip { get; init; }

    public string Id(int seed) => string.Concat(seed.ToString(System.Globalization.CultureInfo.InvariantCulture), "-", Index.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public bool AnthropicVersionSent => Headers.Exists(h => h.Key.Equals("anthropic-version", StringComparison.OrdinalIgnoreCase));

    /// <summary>The error shape the proxy must answer in.</summary>
    public ApiDialect ExpectedDialect => Route.Dialect ?? (AnthropicVersionSent ? ApiDialect.Anthropic : ApiDialect.OpenAI);

    public override string ToString() => $"#{Index} {Class} {Method} {Path} key={Key}/{KeyHeader}: {Description}";
}
