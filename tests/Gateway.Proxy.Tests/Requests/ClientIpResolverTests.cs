using System.Net;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Requests;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Tests.Requests;

public sealed class ClientIpResolverTests
{
    private static string Resolve(string peer, string? forwarded, params string[] trusted)
    {
        var resolver = new ClientIpResolver(new ProxyOptions { TrustedProxies = trusted });
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse(peer);
        if (forwarded is not null) context.Request.Headers["X-Forwarded-For"] = forwarded;
        return resolver.Resolve(context);
    }

    [Fact]
    public void Forwarded_header_is_ignored_when_no_proxy_is_trusted()
    {
        Assert.Equal("198.51.100.7", Resolve("198.51.100.7", "203.0.113.9"));
    }

    [Fact]
    public void Forwarded_header_is_ignored_when_the_peer_is_not_trusted()
    {
        Assert.Equal("198.51.100.7", Resolve("198.51.100.7", "203.0.113.9", "10.0.0.0/8"));
    }

    [Fact]
    public void Rightmost_untrusted_address_is_the_client_behind_trusted_proxies()
    {
        // The client forged "1.1.1.1"; the outer balancer (10.0.0.2) appended the real client, the inner one (10.0.0.3) the balancer.
        Assert.Equal("203.0.113.9", Resolve("10.0.0.4", "1.1.1.1, 203.0.113.9, 10.0.0.2, 10.0.0.3", "10.0.0.0/8"));
    }

    [Fact]
    public void Several_header_lines_are_read_as_one_list_from_the_right()
    {
        var resolver = new ClientIpResolver(new ProxyOptions { TrustedProxies = ["10.0.0.1", "10.0.0.2"] });
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse("10.0.0.1");
        context.Request.Headers["X-Forwarded-For"] = new Microsoft.Extensions.Primitives.StringValues(["192.0.2.1, 192.0.2.2", "10.0.0.2"]);
        Assert.Equal("192.0.2.2", resolver.Resolve(context));
    }

    [Fact]
    public void All_trusted_hops_give_the_leftmost_and_garbage_stops_at_the_hop_that_wrote_it()
    {
        Assert.Equal("10.1.2.3", Resolve("10.0.0.4", "10.1.2.3, 10.0.0.2", "10.0.0.0/8"));
        Assert.Equal("10.0.0.2", Resolve("10.0.0.4", "not-an-ip, 10.0.0.2", "10.0.0.0/8"));
        Assert.Equal("10.0.0.4", Resolve("10.0.0.4", "not-an-ip", "10.0.0.0/8"));
    }

    [Fact]
    public void Ports_ipv6_and_ipv4_mapped_addresses_are_normalised()
    {
        Assert.Equal("2001:db8::1", Resolve("::ffff:10.0.0.4", "[2001:db8::1]:4431", "10.0.0.4"));
        Assert.Equal("203.0.113.5", Resolve("::ffff:10.0.0.4", "203.0.113.5:1234", "10.0.0.0/8"));
        Assert.Equal("192.0.2.44", Resolve("::ffff:192.0.2.44", null));
        Assert.Equal("2001:db8::9", Resolve("fd00::1", "2001:db8::9", "fd00::/8"));
    }

    [Fact]
    public void The_peer_text_is_formatted_once_per_address()
    {
        var resolver = new ClientIpResolver(new ProxyOptions());
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse("192.0.2.1");
        var first = resolver.Resolve(context);
        context.Connection.RemoteIpAddress = IPAddress.Parse("192.0.2.1");
        Assert.Same(first, resolver.Resolve(context));
        context.Connection.RemoteIpAddress = IPAddress.Parse("192.0.2.2");
        Assert.Equal("192.0.2.2", resolver.Resolve(context));
    }

    [Fact]
    public void Invalid_trusted_proxy_entries_are_reported_at_start()
    {
        var errors = new ProxyOptions { TrustedProxies = ["10.0.0.0/8", "10.0.0.0/99", "proxy.local"] }.Validate();
        Assert.Equal(2, errors.Count);
        Assert.Contains(errors, e => e.Contains("10.0.0.0/99", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("proxy.local", StringComparison.Ordinal));
    }
}
