using Gateway.Operator.Hosting;

namespace Gateway.Operator;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var app = OperatorApp.Build(args);
        await app.RunAsync();
        return 0;
    }
}
