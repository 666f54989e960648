namespace Gateway.MockUpstream.OAuth;

/// <summary>Settings under "Mock:OAuth": the mock's OAuth token endpoint and whether API routes demand its tokens.</summary>
public sealed class MockOAuthOptions
{
    /// <summary>When true, API routes accept only Mock:ApiKey (if set) or an access token issued by
    /// POST /oauth/token that has not expired or been revoked; anything else is a 401. Off by default.</summary>
    public bool RequireAccessToken { get; set; }

    /// <summary>Lifetime of issued access tokens, in seconds (fractions allowed, so tests can use short ones).</summary>
    public double AccessTokenLifetimeSeconds { get; set; } = 3600;

    /// <summary>The client_id refresh requests must send; empty accepts any.</summary>
    public string ClientId { get; set; } = "";

    internal void Validate()
    {
        if (!(AccessTokenLifetimeSeconds > 0))
            throw new InvalidOperationException($"Mock:OAuth:AccessTokenLifetimeSeconds must be positive (was {AccessTokenLifetimeSeconds}).");
    }
}
