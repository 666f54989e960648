using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Proxy.Forwarding;

/// <summary>Which headers cross the proxy in each direction.</summary>
public static class HeaderRules
{
    /// <summary>Request headers never forwarded: hop-by-hop, the client's credentials (replaced by the
    /// upstream's), content framing (set from the forwarded body) and Accept-Encoding (the proxy must
    /// read the response to meter it, so it asks for identity encoding).</summary>
    public static bool SkipRequestHeader(string name) =>
        IsHopByHop(name)
        || name.Equals("Host", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || name.Equals("x-api-key", StringComparison.OrdinalIgnoreCase)
        || name.Equals("api-key", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Accept-Encoding", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Expect", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Cookie", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith("x-tokengate-", StringComparison.OrdinalIgnoreCase)
        || name.StartsWith(':');

    /// <summary>Response headers never copied back.</summary>
    public static bool SkipResponseHeader(string name) =>
        IsHopByHop(name) || name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase);

    private static bool IsHopByHop(string name) =>
        name.Equals("Connection", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Keep-Alive", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Proxy-Connection", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Proxy-Authenticate", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase)
        || name.Equals("TE", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Trailer", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Upgrade", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Alt-Svc", StringComparison.OrdinalIgnoreCase);

    /// <summary>Copies the client's request headers to the upstream request (content headers onto the content).</summary>
    public static void CopyRequestHeaders(IHeaderDictionary source, HttpRequestMessage destination)
    {
        foreach (var header in source)
        {
            if (SkipRequestHeader(header.Key)) continue;
            var value = header.Value;
            if (value.Count == 1)
            {
                var v = value[0];
                if (!destination.Headers.TryAddWithoutValidation(header.Key, v)) destination.Content?.Headers.TryAddWithoutValidation(header.Key, v);
            }
            else
            {
                string?[] values = value.ToArray();
                if (!destination.Headers.TryAddWithoutValidation(header.Key, values!)) destination.Content?.Headers.TryAddWithoutValidation(header.Key, values!);
            }
        }
    }

    /// <summary>Copies the upstream's response headers to the client response.</summary>
    public static void CopyResponseHeaders(HttpResponseHeaders headers, HttpContentHeaders? contentHeaders, IHeaderDictionary destination, bool dropContentLength)
    {
        foreach (var header in headers.NonValidated) Copy(header.Key, header.Value, destination, dropContentLength);
        if (contentHeaders is null) return;
        foreach (var header in contentHeaders.NonValidated) Copy(header.Key, header.Value, destination, dropContentLength);
    }

    private static void Copy(string name, HeaderStringValues values, IHeaderDictionary destination, bool dropContentLength)
    {
        if (SkipResponseHeader(name)) return;
        if (dropContentLength && name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)) return;
        if (values.Count == 1)
        {
            destination[name] = values.ToString();
            return;
        }
        var array = new string[values.Count];
        var i = 0;
        foreach (var v in values) array[i++] = v;
        destination[name] = new StringValues(array);
    }
}
