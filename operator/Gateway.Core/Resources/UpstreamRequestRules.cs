using System.Buffers;

namespace Gateway.Core.Resources;

/// <summary>
/// The rules for an UpstreamAccount's <c>headers</c> and <c>paths</c>, shared by the operator (which refuses an account
/// that breaks them, with a clear condition) and the proxy (which applies them).
/// </summary>
public static class UpstreamRequestRules
{
    public const int MaxHeaders = 32;
    public const int MaxHeaderValueLength = 4096;
    public const int MaxPathLength = 512;

    /// <summary>The upstream paths (after the base URL) an account may override, one per proxied API route.</summary>
    public static readonly string[] OverridablePaths = ["/chat/completions", "/completions", "/embeddings", "/responses", "/messages", "/messages/count_tokens"];

    // Headers the proxy owns: credentials (sent from the account's Secret), framing, hop-by-hop and routing.
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "Authorization", "x-api-key", "api-key", "Host", "Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding",
        "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer", "Upgrade",
        "Expect", "Cookie", "Accept-Encoding",
    };

    // RFC 9110 token characters.
    private static readonly SearchValues<char> TokenChars =
        SearchValues.Create("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    /// <summary>What is wrong with <paramref name="headers"/>, or null when they may be sent.</summary>
    public static string? HeadersProblem(IReadOnlyDictionary<string, string>? headers)
    {
        if (headers is null) return null;
        if (headers.Count > MaxHeaders) return $"spec.headers may hold at most {MaxHeaders} headers.";
        foreach (var (name, value) in headers)
        {
            if (name.Length == 0 || name.Length > 256 || name.AsSpan().ContainsAnyExcept(TokenChars))
                return $"spec.headers: '{Printable(name)}' is not a valid header name.";
            if (Reserved.Contains(name) || name.StartsWith("x-tokengate-", StringComparison.OrdinalIgnoreCase))
                return $"spec.headers: {name} is set by the proxy itself and cannot be overridden (credentials come from spec.credentials).";
            if (value is null || value.Length > MaxHeaderValueLength) return $"spec.headers: the value of {name} must be at most {MaxHeaderValueLength} characters.";
            foreach (var c in value)
            {
                if (c is '\r' or '\n' or '\0' || char.IsControl(c) && c != '\t') return $"spec.headers: the value of {name} contains a control character.";
            }
        }
        return null;
    }

    /// <summary>What is wrong with <paramref name="paths"/>, or null when they may be used.</summary>
    public static string? PathsProblem(IReadOnlyDictionary<string, string>? paths)
    {
        if (paths is null) return null;
        foreach (var (route, path) in paths)
        {
            if (Array.IndexOf(OverridablePaths, route) < 0)
                return $"spec.paths: '{Printable(route)}' is not an overridable path; use one of {string.Join(", ", OverridablePaths)}.";
            if (string.IsNullOrEmpty(path) || path[0] != '/' || path.Length > MaxPathLength || path.Contains("..", StringComparison.Ordinal)
                || path.AsSpan().IndexOfAny("?#\\ \t\r\n") >= 0 || !Uri.TryCreate("http://h" + path, UriKind.Absolute, out _))
                return $"spec.paths: the path for {route} must start with '/', be at most {MaxPathLength} characters, and hold no query, fragment, spaces or '..'.";
        }
        return null;
    }

    private static string Printable(string s) => s.Length > 64 ? s[..64] + "…" : s.Replace('\r', ' ').Replace('\n', ' ');

    /// <summary>Why spec.windows is invalid, or null: each period once, one of 5h, 1d, 7d, with a positive requests or tokens limit.
    /// The CRD schema says the same; this holds for the file source and for objects the API server did not validate.</summary>
    public static string? WindowsProblem(IReadOnlyList<UpstreamWindow>? windows)
    {
        if (windows is null) return null;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var w in windows)
        {
            if (w.Period is not (WindowPeriods.FiveHours or WindowPeriods.OneDay or WindowPeriods.SevenDays))
                return $"spec.windows: period '{w.Period}' is not one of 5h, 1d, 7d.";
            if (!seen.Add(w.Period)) return $"spec.windows: period '{w.Period}' is listed twice.";
            if (w.Requests is null && w.Tokens is null) return $"spec.windows: the {w.Period} window needs requests, tokens or both.";
            if (w.Requests is < 1 || w.Tokens is < 1) return $"spec.windows: the {w.Period} window's limits must be positive.";
        }
        return null;
    }
}
