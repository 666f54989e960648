using Gateway.Portal.Hosting;

namespace Gateway.Portal;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static void Main(string[] args) => PortalApp.Build(args).Run();
}
