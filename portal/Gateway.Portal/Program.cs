using Gateway.Core.Hosting;
using Gateway.Portal.Hosting;

namespace Gateway.Portal;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => ProcessHost.RunAsync("portal", () => PortalApp.Build(args));
}
