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

    // Printable ASCII and tab: what HttpClient sends as a header value (it refuses the rest at send time).
    private static readonly System.Buffers.SearchValues<char> s_forwardable = System.Buffers.SearchValues.Create(
        "\t !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    /// <summary>The name of a header that would be forwarded but whose value cannot be sent (non-ASCII or control
    /// characters), or null. Forwarding it would fail the upstream attempt and count as the account's failure.</summary>
    public static string? FindUnforwardable(IHeaderDictionary headers)
    {
        foreach (var header in headers)
        {
            foreach (var value in header.Value)
            {
                if (value is not null && value.AsSpan().ContainsAnyExcept(s_forwardable) && !SkipRequestHeader(header.Key)) return header.Key;
            }
        }
        return null;
    }

    /// <summary>Whether a client's x-request-id can be echoed as a response header: 1-200 printable ASCII characters.</summary>
    public static bool IsEchoableId(string? id) =>
        !string.IsNullOrEmpty(id) && id.Length <= 200 && !id.AsSpan().ContainsAnyExcept(s_forwardable) && !id.Contains('\t', StringComparison.Ordinal);

    /// <summary>Copies the client's request headers to the upstream request (content headers onto the content).
    /// Headers the client's Connection header names are hop-by-hop too (RFC 9110 §7.6.1) and stay here.</summary>
    public static void CopyRequestHeaders(IHeaderDictionary source, HttpRequestMessage destination)
    {
        var connection = source.Connection;
        foreach (var header in source)
        {
            if (SkipRequestHeader(header.Key)) continue;
            if (connection.Count > 0 && NamedIn(connection, header.Key)) continue;
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

    private static bool NamedIn(StringValues connection, string name)
    {
        foreach (var value in connection)
        {
            if (value is null) continue;
            foreach (var range in value.AsSpan().Split(','))
            {
                if (value.AsSpan()[range].Trim().Equals(name, StringComparison.OrdinalIgnoreCase)) return true;
            }
        }
        return false;
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
