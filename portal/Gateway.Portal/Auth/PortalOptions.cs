using System.Net;

namespace Gateway.Portal.Auth;

/// <summary>Portal sign-in and session settings (section <c>TokenGate:Portal</c>).</summary>
public sealed class PortalOptions
{
    public const string Section = "TokenGate:Portal";

    /// <summary>A session unused this long ends.</summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>A session ends this long after sign-in, however active.</summary>
    public TimeSpan SessionAbsoluteLifetime { get; set; } = TimeSpan.FromHours(12);

    /// <summary>Reverse proxies (IP addresses or CIDR networks) whose X-Forwarded-For/-Proto are believed. Default: none.</summary>
    public List<string> TrustedProxies { get; set; } = [];

    /// <summary>Consecutive failed sign-ins that lock an account.</summary>
    public int LockoutThreshold { get; set; } = 5;

    /// <summary>How long a locked account stays locked.</summary>
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Sign-in and enrolment POSTs allowed per client IP per minute.</summary>
    public int AuthPostsPerMinute { get; set; } = 20;

    /// <summary>How long an enrolment in progress (between its steps) stays valid.</summary>
    public TimeSpan EnrolmentTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Issuer name shown in authenticator apps.</summary>
    public string TotpIssuer { get; set; } = "TokenGate";

    /// <summary>Validation with messages that say what to fix; run at start-up.</summary>
    public IEnumerable<string> Validate()
    {
        if (SessionIdleTimeout < TimeSpan.FromMinutes(1)) yield return $"{Section}:SessionIdleTimeout must be at least 00:01:00 (was {SessionIdleTimeout}).";
        if (SessionAbsoluteLifetime < SessionIdleTimeout) yield return $"{Section}:SessionAbsoluteLifetime ({SessionAbsoluteLifetime}) must not be shorter than SessionIdleTimeout ({SessionIdleTimeout}).";
        if (LockoutThreshold < 1) yield return $"{Section}:LockoutThreshold must be at least 1 (was {LockoutThreshold}).";
        if (LockoutDuration <= TimeSpan.Zero) yield return $"{Section}:LockoutDuration must be positive (was {LockoutDuration}).";
        if (AuthPostsPerMinute < 1) yield return $"{Section}:AuthPostsPerMinute must be at least 1 (was {AuthPostsPerMinute}).";
        if (EnrolmentTimeout < TimeSpan.FromMinutes(1)) yield return $"{Section}:EnrolmentTimeout must be at least 00:01:00 (was {EnrolmentTimeout}).";
        if (string.IsNullOrWhiteSpace(TotpIssuer) || TotpIssuer.Contains(':', StringComparison.Ordinal)) yield return $"{Section}:TotpIssuer must be a non-empty name without ':'.";
        foreach (var p in TrustedProxies)
        {
            if (!TryParseProxy(p, out _, out _)) yield return $"{Section}:TrustedProxies: '{p}' is neither an IP address nor a CIDR network (e.g. 10.0.0.1 or 10.0.0.0/8).";
        }
    }

    /// <summary>Parses one TrustedProxies entry: an address or a network in CIDR notation.</summary>
    public static bool TryParseProxy(string value, out IPAddress? address, out IPNetwork? network)
    {
        address = null;
        network = null;
        var v = value.Trim();
        if (v.Contains('/', StringComparison.Ordinal))
        {
            if (!IPNetwork.TryParse(v, out var n)) return false;
            network = n;
            return true;
        }
        if (!IPAddress.TryParse(v, out var a)) return false;
        address = a;
        return true;
    }
}
