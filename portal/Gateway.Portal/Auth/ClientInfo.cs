namespace Gateway.Portal.Auth;

/// <summary>Where a request came from, as recorded in sign-in events, sessions and the audit log.</summary>
public sealed record ClientInfo(string Ip, string UserAgent)
{
    private const int MaxUserAgent = 512;

    /// <summary>The client IP (after trusted forwarded headers) and the user agent, truncated.</summary>
    public static ClientInfo From(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var ua = context.Request.Headers.UserAgent.ToString();
        if (ua.Length > MaxUserAgent) ua = ua[..MaxUserAgent];
        return new ClientInfo(context.Connection.RemoteIpAddress?.ToString() ?? "", ua);
    }
}
