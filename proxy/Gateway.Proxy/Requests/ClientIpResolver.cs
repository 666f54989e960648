using System.Net;
using Gateway.Proxy.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Proxy.Requests;

/// <summary>
/// The caller's IP address for the usage record. The direct peer is the client unless it is one of the
/// configured trusted proxies (<c>TokenGate:Proxy:TrustedProxies</c>, IPs or CIDRs, none by default); then
/// X-Forwarded-For is read from the right, skipping trusted hops, and the right-most untrusted address is the
/// client (addresses further left were written by the client itself and prove nothing). Called once per
/// request at settlement; the text of the last peer address is reused, so a keep-alive client costs no
/// formatting.
/// </summary>
public sealed class ClientIpResolver
{
    private readonly IPNetwork[] _trusted;
    private Formatted? _last;

    private sealed record Formatted(IPAddress Address, string Text);

    public ClientIpResolver(ProxyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _trusted = ParseNetworks(options.TrustedProxies, out var errors);
        if (errors.Count > 0) throw new ArgumentException(string.Join(" ", errors), nameof(options));
    }

    /// <summary>Parses IPs and CIDRs (entries may also be comma-separated lists); problems go to <paramref name="errors"/>.</summary>
    public static IPNetwork[] ParseNetworks(IReadOnlyList<string>? entries, out List<string> errors)
    {
        errors = [];
        var list = new List<IPNetwork>();
        if (entries is null) return [];
        foreach (var entry in entries)
        {
            foreach (var raw in (entry ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (raw.Contains('/', StringComparison.Ordinal))
                {
                    if (IPNetwork.TryParse(raw, out var network)) list.Add(network);
                    else errors.Add($"{ProxyOptions.Section}:TrustedProxies: '{raw}' is not a valid CIDR (e.g. 10.0.0.0/8 or fd00::/8).");
                }
                else if (IPAddress.TryParse(raw, out var ip))
                {
                    ip = Normalize(ip);
                    list.Add(new IPNetwork(ip, ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
                }
                else errors.Add($"{ProxyOptions.Section}:TrustedProxies: '{raw}' is not an IP address or CIDR.");
            }
        }
        return [.. list];
    }

    /// <summary>The client's address as text, or empty when the connection has none (e.g. in-process tests).</summary>
    public string Resolve(HttpContext context)
    {
        var peer = context.Connection.RemoteIpAddress;
        if (peer is null) return "";
        if (_trusted.Length > 0 && IsTrusted(Normalize(peer)))
        {
            var forwarded = context.Request.Headers["X-Forwarded-For"];
            if (forwarded.Count > 0 && RightmostUntrusted(forwarded) is { } client) return client;
        }
        return Format(peer);
    }

    private string Format(IPAddress peer)
    {
        var last = Volatile.Read(ref _last);
        if (last is not null && last.Address.Equals(peer)) return last.Text;
        var text = Normalize(peer).ToString();
        Volatile.Write(ref _last, new Formatted(peer, text));
        return text;
    }

    private bool IsTrusted(IPAddress address)
    {
        foreach (var network in _trusted) if (network.Contains(address)) return true;
        return false;
    }

    /// <summary>
    /// Walks the header's addresses from the right. Returns the first untrusted one; if every one is trusted,
    /// the left-most; if an entry is not an address, the trusted hop to its right that wrote it (null when that
    /// is the peer itself, which the caller then uses).
    /// </summary>
    private string? RightmostUntrusted(StringValues forwarded)
    {
        IPAddress? lastTrusted = null;
        for (var v = forwarded.Count - 1; v >= 0; v--)
        {
            var value = forwarded[v].AsSpan();
            var end = value.Length;
            while (end > 0)
            {
                var comma = value[..end].LastIndexOf(',');
                var token = value[(comma + 1)..end].Trim();
                end = comma < 0 ? 0 : comma;
                if (token.IsEmpty) continue;
                if (!TryParseHop(token, out var address)) return lastTrusted?.ToString();
                if (!IsTrusted(address)) return address.ToString();
                lastTrusted = address;
            }
        }
        return lastTrusted?.ToString();
    }

    /// <summary>An X-Forwarded-For entry: an address, possibly with a port ("1.2.3.4:5", "[::1]:5").</summary>
    private static bool TryParseHop(ReadOnlySpan<char> token, out IPAddress address)
    {
        if (IPAddress.TryParse(token, out var ip) || (IPEndPoint.TryParse(token, out var ep) && (ip = ep.Address) is not null))
        {
            address = Normalize(ip);
            return true;
        }
        address = IPAddress.None;
        return false;
    }

    private static IPAddress Normalize(IPAddress ip) => ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;
}
