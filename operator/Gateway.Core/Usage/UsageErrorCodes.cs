namespace Gateway.Core.Usage;

/// <summary>
/// The short codes recorded in <c>usage_log.error_code</c> for failed requests. A provider's own error code
/// (e.g. <c>insufficient_quota</c>, <c>overloaded_error</c>) is kept as the provider sent it when the proxy
/// could read it; these are TokenGate's own, and the fallbacks by HTTP status.
/// </summary>
public static class UsageErrorCodes
{
    public const string ClientDisconnected = "client_disconnected";
    public const string UpstreamTimeout = "upstream_timeout";
    public const string UpstreamError = "upstream_error";
    public const string RateLimitExceeded = "rate_limit_exceeded";
    public const string ReservationExpired = "reservation_expired";

    /// <summary>Longest code kept; longer provider codes are cut.</summary>
    public const int MaxLength = 64;

    /// <summary>The code for an upstream's HTTP error status when its body named none (no allocation: constants).</summary>
    public static string ForStatus(int status) => status switch
    {
        400 => "bad_request",
        401 => "upstream_unauthorized",
        403 => "upstream_forbidden",
        404 => "not_found",
        408 => UpstreamTimeout,
        409 => "conflict",
        413 => "request_too_large",
        422 => "unprocessable_entity",
        429 => RateLimitExceeded,
        500 => "upstream_server_error",
        502 => "upstream_bad_gateway",
        503 => "upstream_unavailable",
        504 => UpstreamTimeout,
        529 => "upstream_overloaded",
        >= 500 => UpstreamError,
        >= 400 => "upstream_client_error",
        _ => "",
    };
}
