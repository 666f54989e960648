using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Proxy.Tests.Infrastructure;

/// <summary>
/// An upstream that answers whatever its handler writes: broken usage, huge or endless streams, bodies without
/// newlines. A real Kestrel server on 127.0.0.1:0; the handler sees every request the proxy forwards.
/// </summary>
public sealed class HostileUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private HostileUpstream(WebApplication app, Uri baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    /// <summary>The server's root, e.g. http://127.0.0.1:12345/.</summary>
    public Uri BaseUrl { get; }

    public static async Task<HostileUpstream> StartAsync(RequestDelegate handler)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.Run(handler);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HostileUpstream(app, new Uri(address.TrimEnd('/') + "/"));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
