using Microsoft.Extensions.Primitives;

namespace Gateway.MockUpstream.Requests;

/// <summary>What a request asks of the mock through <c>x-mock-*</c> headers (they survive a proxy).</summary>
internal enum MockFault
{
    None,
    /// <summary>Abort the connection before any response byte.</summary>
    Drop,
    /// <summary>Start the response, send a little, then abort.</summary>
    Cut,
}

internal struct MockControls
{
    public int LatencyMs;
    public int ChunkDelayMs;
    public int Status;
    /// <summary>Retry-After (seconds) on an injected error status; a 429 says 1 without it.</summary>
    public int RetryAfterSeconds;
    public MockFault Fault;
    public bool NoUsage;
    public int CachedTokens;
    public int CacheWriteTokens;
    public int ReasoningTokens;
    public int? OutputTokens;
    public bool SplitEvents;

    // One pass over the headers instead of a lookup per control: most requests carry none.
    public static MockControls From(IHeaderDictionary headers)
    {
        var c = default(MockControls);
        foreach (var (name, value) in headers)
        {
            if (name.Length < 8 || !name.StartsWith("x-mock-", StringComparison.OrdinalIgnoreCase)) continue;
            var key = name.AsSpan(7);
            if (key.Equals("latency-ms", StringComparison.OrdinalIgnoreCase)) c.LatencyMs = Int(value);
            else if (key.Equals("chunk-delay-ms", StringComparison.OrdinalIgnoreCase)) c.ChunkDelayMs = Int(value);
            else if (key.Equals("status", StringComparison.OrdinalIgnoreCase)) c.Status = Int(value);
            else if (key.Equals("retry-after", StringComparison.OrdinalIgnoreCase)) c.RetryAfterSeconds = Int(value);
            else if (key.Equals("fault", StringComparison.OrdinalIgnoreCase)) c.Fault = ParseFault(value);
            else if (key.Equals("no-usage", StringComparison.OrdinalIgnoreCase)) c.NoUsage = Flag(value);
            else if (key.Equals("cached-tokens", StringComparison.OrdinalIgnoreCase)) c.CachedTokens = Int(value);
            else if (key.Equals("cache-write-tokens", StringComparison.OrdinalIgnoreCase)) c.CacheWriteTokens = Int(value);
            else if (key.Equals("reasoning-tokens", StringComparison.OrdinalIgnoreCase)) c.ReasoningTokens = Int(value);
            else if (key.Equals("output-tokens", StringComparison.OrdinalIgnoreCase)) c.OutputTokens = IntOrNull(value);
            else if (key.Equals("split-events", StringComparison.OrdinalIgnoreCase)) c.SplitEvents = Flag(value);
        }
        return c;
    }

    private static int Int(StringValues v) =>
        int.TryParse(v.ToString().AsSpan().Trim(), out var n) && n > 0 ? Math.Min(n, 10_000_000) : 0;

    private static int? IntOrNull(StringValues v) =>
        int.TryParse(v.ToString().AsSpan().Trim(), out var n) && n >= 0 ? Math.Min(n, 1_000_000) : null;

    private static bool Flag(StringValues v)
    {
        var s = v.ToString().AsSpan().Trim();
        return s is "1" || s.Equals("true", StringComparison.OrdinalIgnoreCase) || s.Equals("yes", StringComparison.OrdinalIgnoreCase);
    }

    private static MockFault ParseFault(StringValues v)
    {
        var s = v.ToString().AsSpan().Trim();
        if (s.Equals("drop", StringComparison.OrdinalIgnoreCase)) return MockFault.Drop;
        if (s.Equals("cut", StringComparison.OrdinalIgnoreCase)) return MockFault.Cut;
        return MockFault.None;
    }
}
