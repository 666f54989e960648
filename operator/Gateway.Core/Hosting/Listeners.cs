using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Matching;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Core.Hosting;

/// <summary>Which of a process's listeners a connection arrived on.</summary>
public enum ListenerKind
{
    /// <summary>The port users and workloads reach (proxy :8080, portal :8081).</summary>
    Public,
    /// <summary>The port Prometheus and the kubelet reach (proxy :8090, portal :8091).</summary>
    Management,
}

/// <summary>Connection feature set by the listener's connection middleware; read by <see cref="ListenerMatcherPolicy"/>.</summary>
public sealed class ListenerFeature(ListenerKind kind)
{
    public static readonly ListenerFeature Public = new(ListenerKind.Public);
    public static readonly ListenerFeature Management = new(ListenerKind.Management);

    public ListenerKind Kind { get; } = kind;
}

/// <summary>
/// The public and management listeners of a process (Kestrel endpoints made from URLs). Public URLs come from
/// <c>--urls</c> / <c>ASPNETCORE_URLS</c> (default given by the process); management URLs from
/// <c>TokenGate:Management:Urls</c> (env <c>TokenGate__Management__Urls</c>, ';'-separated). When the management
/// URLs are not set and every public URL asks for a dynamic port (port 0, as tests do), the management listener
/// also takes a dynamic port on the first public URL's host, so that such a process never grabs a fixed port.
/// After start, <see cref="PublicUrls"/> and <see cref="ManagementUrls"/> hold the bound addresses.
/// </summary>
public sealed class Listeners
{
    public const string ManagementUrlsKey = "TokenGate:Management:Urls";

    private readonly List<ListenOptions> _public = [];
    private readonly List<ListenOptions> _management = [];

    private Listeners(IReadOnlyList<BindingAddress> publicAddresses, IReadOnlyList<BindingAddress> managementAddresses)
    {
        PublicAddresses = publicAddresses;
        ManagementAddresses = managementAddresses;
    }

    /// <summary>The configured public addresses.</summary>
    public IReadOnlyList<BindingAddress> PublicAddresses { get; }

    /// <summary>The configured management addresses.</summary>
    public IReadOnlyList<BindingAddress> ManagementAddresses { get; }

    /// <summary>The bound public URLs (actual ports once the server started).</summary>
    public IReadOnlyList<Uri> PublicUrls => Bound(_public, PublicAddresses);

    /// <summary>The bound management URLs (actual ports once the server started).</summary>
    public IReadOnlyList<Uri> ManagementUrls => Bound(_management, ManagementAddresses);

    /// <summary>
    /// Reads the URLs, records a problem per invalid one, and makes Kestrel listen on them with each connection
    /// tagged by <see cref="ListenerFeature"/>. Endpoints are public-only unless marked otherwise
    /// (<see cref="ListenerEndpointConventions"/>), and the management listener serves only marked endpoints.
    /// </summary>
    public static Listeners Configure(WebApplicationBuilder builder, string defaultPublicUrl, string defaultManagementUrl, ConfigurationProblems problems)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(problems);
        var config = builder.Configuration;
        var publicSetting = FirstNonEmpty(config[WebHostDefaults.ServerUrlsKey], config["ASPNETCORE_URLS"]) ?? defaultPublicUrl;
        var publicAddresses = Parse(publicSetting, "urls (--urls or ASPNETCORE_URLS)", problems);
        var managementSetting = FirstNonEmpty(config[ManagementUrlsKey]);
        if (managementSetting is null)
        {
            managementSetting = publicAddresses.Count > 0 && publicAddresses.All(a => a.Port == 0)
                ? $"http://{publicAddresses[0].Host}:0"
                : defaultManagementUrl;
        }
        var managementAddresses = Parse(managementSetting, ManagementUrlsKey, problems);
        foreach (var m in managementAddresses)
        {
            if (m.Port != 0 && publicAddresses.Any(p => p.Port == m.Port))
                problems.Add($"{ManagementUrlsKey} uses port {m.Port}, which the public listener (urls) uses too: metrics must stay off the public port. Pick another port (default {defaultManagementUrl}).");
        }

        var listeners = new Listeners(publicAddresses, managementAddresses);
        // Kestrel takes these endpoints instead of the URL settings, which would otherwise be bound too
        // (and logged as overridden): they are consumed here.
        builder.WebHost.UseSetting(WebHostDefaults.ServerUrlsKey, "");
        builder.WebHost.UseSetting(WebHostDefaults.HttpPortsKey, "");
        builder.WebHost.UseSetting(WebHostDefaults.HttpsPortsKey, "");
        builder.WebHost.ConfigureKestrel(k => listeners.Listen(k));
        builder.Services.AddSingleton(listeners);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<MatcherPolicy, ListenerMatcherPolicy>());
        return listeners;
    }

    private void Listen(KestrelServerOptions kestrel)
    {
        _public.Clear();
        _management.Clear();
        // Public first: Addresses.First() stays the public URL for hosts and tests that read it.
        foreach (var a in PublicAddresses) Listen(kestrel, a, ListenerFeature.Public, _public);
        foreach (var a in ManagementAddresses) Listen(kestrel, a, ListenerFeature.Management, _management);
    }

    private static void Listen(KestrelServerOptions kestrel, BindingAddress address, ListenerFeature feature, List<ListenOptions> into)
    {
        void Configure(ListenOptions o)
        {
            into.Add(o);
            // The certificate comes from Kestrel's HTTPS defaults (Kestrel:Certificates:Default, ConfigureHttpsDefaults).
            if (string.Equals(address.Scheme, Uri.UriSchemeHttps, StringComparison.OrdinalIgnoreCase)) o.UseHttps();
            o.Use(next => connection =>
            {
                connection.Features.Set(feature);
                return next(connection);
            });
        }

        if (address.IsUnixPipe) kestrel.ListenUnixSocket(address.UnixPipePath, Configure);
        else if (string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase)) kestrel.ListenLocalhost(address.Port, Configure);
        else if (IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip)) kestrel.Listen(ip, address.Port, Configure);
        else kestrel.ListenAnyIP(address.Port, Configure); // "*", "+" and host names bind every address, as --urls does.
    }

    private static List<BindingAddress> Parse(string setting, string name, ConfigurationProblems problems)
    {
        var list = new List<BindingAddress>();
        foreach (var url in setting.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress a;
            try { a = BindingAddress.Parse(url); }
            catch (FormatException) { problems.Add($"{name}: '{url}' is not a URL (expected e.g. http://0.0.0.0:8090)."); continue; }
            if (!string.Equals(a.Scheme, "http", StringComparison.OrdinalIgnoreCase) && !string.Equals(a.Scheme, "https", StringComparison.OrdinalIgnoreCase))
                problems.Add($"{name}: '{url}' must be an http:// (or https://) URL.");
            else if (!string.IsNullOrEmpty(a.PathBase))
                problems.Add($"{name}: '{url}' must not have a path.");
            else if (!a.IsUnixPipe && string.Equals(a.Host, "localhost", StringComparison.OrdinalIgnoreCase) && a.Port == 0)
                problems.Add($"{name}: '{url}': a dynamic port (0) needs an IP address such as 127.0.0.1, not localhost.");
            else list.Add(a);
        }
        if (list.Count == 0 && !problems.Messages.Any(m => m.StartsWith(name, StringComparison.Ordinal))) problems.Add($"{name} lists no URL.");
        return list;
    }

    private static List<Uri> Bound(List<ListenOptions> options, IReadOnlyList<BindingAddress> configured)
    {
        var urls = new List<Uri>(options.Count);
        for (var i = 0; i < options.Count; i++)
        {
            urls.Add(options[i].IPEndPoint is { } ep
                ? new Uri($"{configured[Math.Min(i, configured.Count - 1)].Scheme}://{(ep.Address.Equals(IPAddress.IPv6Any) ? "[::]" : ep.Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? "[" + ep.Address + "]" : ep.Address.ToString())}:{ep.Port}/")
                : new Uri(configured[Math.Min(i, configured.Count - 1)].ToString().TrimEnd('/') + "/"));
        }
        return urls;
    }

    private static string? FirstNonEmpty(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v));
}
