using System.Text;
using System.Text.Json;
using Gateway.Proxy.Requests;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>The promises checked on every answer and on every request the upstream received.</summary>
public static class FuzzChecks
{
    private static readonly string[] ForbiddenUpstreamHeaders =
    [
        "connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade", "transfer-encoding", "cookie",
        "x-fuzz-hop", "x-fuzz-hop2",
    ];

    public static IEnumerable<string> Check(FuzzCase c, int status, string? contentType, byte[] body, bool fromUpstream, bool reachedUpstream)
    {
        var validKey = c.Key == KeyMode.Valid;
        // 505 is Kestrel's answer to an HTTP version it does not speak, before any route runs: the right one.
        if (status >= 500 && !fromUpstream && !(c.ProtocolLevel && status == 505)) yield return "the proxy answered " + status;
        // A client that shuts its sending side is gone for Kestrel, which closes the connection: no answer is right.
        if (status == 0 && !c.ProtocolLevel && !c.HalfClose) yield return "the connection closed without an answer";
        if (!validKey)
        {
            if (reachedUpstream) yield return "a request without a valid key reached the upstream";
            if (status is >= 200 and < 400) yield return "a request without a valid key was served";
        }
        if (status is >= 200 and < 300 && !fromUpstream && c.Route.Kind is not ("models" or "usage"))
            yield return "a success the upstream did not send";
        if (status >= 400 && !fromUpstream)
        {
            var bare = body.Length == 0 && (c.ProtocolLevel || c.Method == "HEAD");
            if (!bare)
            {
                var shape = ShapeProblem(c.ExpectedDialect, contentType, body);
                if (shape is not null) yield return shape;
            }
        }
        if (c.Class == FuzzClass.Valid && validKey && status is < 200 or >= 300) yield return "a valid request was not served";
        if (c.Class == FuzzClass.OversizedBody && status != 413) yield return "an oversized body was not refused with 413";
        if (c.Class == FuzzClass.Method && status != 405) yield return "a known path with the wrong method was not a 405";
        if (c.Class == FuzzClass.TruncatedBody && validKey && status is not (0 or 400)) yield return "a body cut short was not a 400";
        if (c.Class == FuzzClass.LabelExplosion && status is < 400 or >= 500) yield return "an unknown model was not refused";
    }

    /// <summary>Null when the body is the dialect's error shape: OpenAI {"error":{"message","type",…}}, Anthropic {"type":"error","error":{"type","message"}}.</summary>
    public static string? ShapeProblem(ApiDialect dialect, string? contentType, byte[] body)
    {
        if (contentType is null || !contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return $"error with Content-Type '{contentType}' instead of application/json";
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("error", out var error) || error.ValueKind != JsonValueKind.Object)
                return "error body without an 'error' object";
            if (!error.TryGetProperty("message", out var m) || m.ValueKind != JsonValueKind.String || m.GetString()!.Length == 0) return "error without a message";
            if (!error.TryGetProperty("type", out var t) || t.ValueKind != JsonValueKind.String) return "error without a type";
            if (dialect == ApiDialect.Anthropic)
            {
                if (!root.TryGetProperty("type", out var rt) || rt.GetString() != "error") return "an OpenAI-shaped error on an Anthropic route";
            }
            else if (root.TryGetProperty("type", out _) || !error.TryGetProperty("code", out _)) return "an Anthropic-shaped error on an OpenAI route";
            return null;
        }
        catch (JsonException)
        {
            return "error body is not JSON";
        }
    }

    public static IEnumerable<string> CheckUpstream(WitnessedRequest w, string clientKey, string upstreamAuthority, string upstreamCredential)
    {
        var credentials = new List<string>();
        foreach (var (name, value) in w.Headers)
        {
            if (value.Contains(clientKey, StringComparison.Ordinal)) yield return $"the client's TokenGate key in '{name}'";
            if (value.Contains(FuzzGenerator.Canary, StringComparison.OrdinalIgnoreCase)) yield return $"a client-injected value in '{name}'";
            if (Array.IndexOf(ForbiddenUpstreamHeaders, name) >= 0 || name.StartsWith("x-tokengate-", StringComparison.Ordinal)) yield return $"hop-by-hop or private header '{name}'";
            if (name == "host" && value != upstreamAuthority) yield return $"Host '{value}' instead of the account's '{upstreamAuthority}'";
            if (name is "authorization" or "x-api-key" or "api-key") credentials.Add(name + "=" + value);
        }
        var expected = credentials.Count == 1 && (credentials[0] == "authorization=Bearer " + upstreamCredential || credentials[0] == "x-api-key=" + upstreamCredential);
        if (!expected) yield return $"{credentials.Count} credential headers ({string.Join(", ", credentials.Select(c => c.Split('=')[0]))}) instead of the account's one";
        if (w.DeclaredLength != w.BodyLength) yield return $"Content-Length {w.DeclaredLength?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "absent"} for a body of {w.BodyLength} bytes";
    }

    public static string Preview(byte[] body)
    {
        var text = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 200)).ReplaceLineEndings(" ");
        return body.Length > 200 ? text + "…" : text.Length == 0 ? "(empty)" : text;
    }
}
