namespace Gateway.MockUpstream;

/// <summary>Settings under "Mock" (appsettings, env Mock__ApiKey, command line --Mock:ApiKey=...).</summary>
public sealed class MockUpstreamOptions
{
    public const string SectionName = "Mock";

    /// <summary>The key API requests must present. Empty: any non-empty credential is accepted.</summary>
    public string ApiKey { get; set; } = "mock-upstream-key";

    /// <summary>Record requests for GET /_mock/requests. Off for benchmarks.</summary>
    public bool Record { get; set; } = true;

    /// <summary>How many recent requests are kept.</summary>
    public int RecordCapacity { get; set; } = 100;

    /// <summary>Models listed by GET /v1/models; null means <see cref="DefaultModels"/>.</summary>
    /// <remarks>Null rather than a pre-filled list: the configuration binder appends to existing lists.</remarks>
    public string[]? Models { get; set; }

    /// <summary>The models of config/samples/upstreamaccount-mock.yaml.</summary>
    public static IReadOnlyList<string> DefaultModels { get; } =
        ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "claude-sonnet-4-5"];

    /// <summary>The OAuth token endpoint (Mock:OAuth:*): access-token lifetime, client id, and whether API routes require its tokens.</summary>
    public OAuth.MockOAuthOptions OAuth { get; set; } = new();

    internal void Validate()
    {
        OAuth.Validate();
        if (RecordCapacity < 1)
            throw new InvalidOperationException($"Mock:RecordCapacity must be at least 1 (was {RecordCapacity}).");
    }
}
