using System.Net;
using Gateway.Proxy.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Forwarding;

/// <summary>
/// The shared HTTP client to upstreams, configured like YARP's forwarder handler: no proxy, no
/// redirects, no decompression (bytes pass through and usage is parsed from them), no cookies,
/// pooled HTTP/1.1 and HTTP/2 connections.
/// </summary>
public sealed class UpstreamInvoker : IDisposable
{
    public UpstreamInvoker(IOptions<ProxyOptions> options)
    {
        var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(options.Value.UpstreamConnectTimeoutSeconds),
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            MaxConnectionsPerServer = int.MaxValue,
            // Do not add trace headers: the request goes upstream as the client sent it.
            ActivityHeadersPropagator = null,
        };
        Invoker = new HttpMessageInvoker(handler, disposeHandler: true);
    }

    public HttpMessageInvoker Invoker { get; }

    public void Dispose() => Invoker.Dispose();
}
