namespace Gateway.Proxy;

/// <summary>Process entry point.</summary>
public static class Program
{
    public static void Main(string[] args) => ProxyApp.Build(args).Run();
}
