namespace Gateway.Proxy.Configuration;

/// <summary>Proxy settings under <c>TokenGate:Proxy</c>; validated at start-up.</summary>
public sealed class ProxyOptions
{
    public const string Section = "TokenGate:Proxy";

    /// <summary>Largest accepted request body; larger bodies get 413 in the provider's shape.</summary>
    public long MaxRequestBodyBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Time a client has to send its whole request head (Kestrel's RequestHeadersTimeout); a slower one is cut off.</summary>
    public double RequestHeadersTimeoutSeconds { get; init; } = 30;

    /// <summary>Time a client has to send its whole body once the head arrived; a slower one gets 408 and is cut off.
    /// Kestrel's minimum data rate (240 bytes/s after 5 s) alone would let a body trickle in for hours.</summary>
    public double RequestBodyTimeoutSeconds { get; init; } = 120;

    /// <summary>How long a cached key/user policy or upstream list is trusted without an invalidation.</summary>
    public double PolicyCacheTtlSeconds { get; init; } = 5;

    /// <summary>Deadline for the upstream's response headers (time to first byte).</summary>
    public double UpstreamTimeToFirstByteSeconds { get; init; } = 60;

    /// <summary>How long past <see cref="UpstreamTotalTimeoutSeconds"/> a request's reservation lives. A replica killed
    /// mid-request never settles; the operator's sweeper charges its reservation (at the reserved amount) once this
    /// lease has passed, so it bounds how long money stays held for a dead request. Default 5 minutes.</summary>
    public double ReservationLeaseMarginSeconds { get; init; } = 300;

    /// <summary>Deadline for the whole upstream exchange, body included.</summary>
    public double UpstreamTotalTimeoutSeconds { get; init; } = 600;

    /// <summary>Upstream connect timeout.</summary>
    public double UpstreamConnectTimeoutSeconds { get; init; } = 10;

    /// <summary>Accounts tried per request (retries happen only before the first byte reaches the client).</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>Consecutive failures that put an account into cooldown.</summary>
    public int CooldownAfterFailures { get; init; } = 3;

    /// <summary>Cooldown length; afterwards one probe request is let through (half-open).</summary>
    public double CooldownSeconds { get; init; } = 30;

    /// <summary>Longest cooldown an upstream 429's Retry-After (or rate-limit reset headers) may impose on an account;
    /// a longer one is cut to this, so a wrong header cannot take an account out for days.</summary>
    public double MaxRetryAfterSeconds { get; init; } = 3600;

    /// <summary>anthropic-version sent upstream when the client sent none.</summary>
    public string AnthropicVersion { get; init; } = "2023-06-01";

    /// <summary>api-version for Azure OpenAI when the account's baseUrl carries none.</summary>
    public string AzureApiVersion { get; init; } = "2024-10-21";

    /// <summary>Output tokens assumed for the reservation when a request sets no max tokens.</summary>
    public long DefaultMaxOutputTokens { get; init; } = 4096;

    /// <summary>Largest non-streaming response kept in memory to read its usage; beyond it usage is estimated.</summary>
    public int MaxResponseParseBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>How often each replica adds its per-account request/token counts to the shared per-minute totals in
    /// Redis and reads the other replicas' back (one Redis call for all accounts with limits); 0 turns sharing off
    /// (each replica then keeps every account's requestsPerMinute/tokensPerMinute on its own). The interval bounds
    /// how far the replicas together can overshoot an account's per-minute limits.</summary>
    public int AccountUsageSyncMilliseconds { get; init; } = 1000;

    /// <summary>Reverse proxies / load balancers (IPs or CIDRs) whose X-Forwarded-For is believed when recording the
    /// client IP; none by default, so the header is ignored unless the direct peer is listed here.</summary>
    public string[] TrustedProxies { get; init; } = [];

    /// <summary>Returns the problems with these settings, empty when valid.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (MaxRequestBodyBytes < 1024) errors.Add($"{Section}:MaxRequestBodyBytes must be at least 1024 (was {MaxRequestBodyBytes}).");
        if (RequestHeadersTimeoutSeconds is <= 0 or > 3600) errors.Add($"{Section}:RequestHeadersTimeoutSeconds must be in (0, 3600] (was {RequestHeadersTimeoutSeconds}).");
        if (RequestBodyTimeoutSeconds is <= 0 or > 86400) errors.Add($"{Section}:RequestBodyTimeoutSeconds must be in (0, 86400] (was {RequestBodyTimeoutSeconds}).");
        if (PolicyCacheTtlSeconds is <= 0 or > 3600) errors.Add($"{Section}:PolicyCacheTtlSeconds must be in (0, 3600].");
        if (UpstreamTimeToFirstByteSeconds <= 0) errors.Add($"{Section}:UpstreamTimeToFirstByteSeconds must be positive.");
        if (UpstreamTotalTimeoutSeconds < UpstreamTimeToFirstByteSeconds) errors.Add($"{Section}:UpstreamTotalTimeoutSeconds must be at least UpstreamTimeToFirstByteSeconds.");
        if (ReservationLeaseMarginSeconds is < 1 or > 86_400) errors.Add($"{Section}:ReservationLeaseMarginSeconds must be between 1 and 86400 (was {ReservationLeaseMarginSeconds}).");
        if (UpstreamConnectTimeoutSeconds <= 0) errors.Add($"{Section}:UpstreamConnectTimeoutSeconds must be positive.");
        if (MaxAttempts is < 1 or > 10) errors.Add($"{Section}:MaxAttempts must be between 1 and 10.");
        if (CooldownAfterFailures < 1) errors.Add($"{Section}:CooldownAfterFailures must be at least 1.");
        if (CooldownSeconds <= 0) errors.Add($"{Section}:CooldownSeconds must be positive.");
        if (MaxRetryAfterSeconds is < 1 or > 7 * 86400) errors.Add($"{Section}:MaxRetryAfterSeconds must be between 1 and 604800 (was {MaxRetryAfterSeconds}).");
        if (string.IsNullOrWhiteSpace(AnthropicVersion)) errors.Add($"{Section}:AnthropicVersion must not be empty.");
        if (string.IsNullOrWhiteSpace(AzureApiVersion)) errors.Add($"{Section}:AzureApiVersion must not be empty.");
        if (DefaultMaxOutputTokens < 1) errors.Add($"{Section}:DefaultMaxOutputTokens must be positive.");
        if (MaxResponseParseBytes < 64 * 1024) errors.Add($"{Section}:MaxResponseParseBytes must be at least 65536.");
        if (AccountUsageSyncMilliseconds != 0 && AccountUsageSyncMilliseconds is < 50 or > 60_000)
            errors.Add($"{Section}:AccountUsageSyncMilliseconds must be 0 (off) or between 50 and 60000 (was {AccountUsageSyncMilliseconds}).");
        Gateway.Proxy.Requests.ClientIpResolver.ParseNetworks(TrustedProxies, out var proxyErrors);
        errors.AddRange(proxyErrors);
        return errors;
    }
}
