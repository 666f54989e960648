namespace Gateway.MockUpstream;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static void Main(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        var app = builder.Build();
        app.MapGet("/healthz", () => "ok");
        app.Run();
    }
}
