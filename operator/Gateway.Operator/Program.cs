using Gateway.Operator.Crds;

namespace Gateway.Operator;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "crds") return CrdCommand.Run(args);

        var builder = WebApplication.CreateBuilder(args);
        var app = builder.Build();
        app.MapGet("/healthz", () => "ok");
        app.Run();
        return 0;
    }
}
