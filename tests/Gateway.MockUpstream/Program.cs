namespace Gateway.MockUpstream;

/// <summary>Process entry point: the mock upstream on http://127.0.0.1:8089 unless --urls says otherwise.</summary>
public static class Program
{
    public static void Main(string[] args) => MockUpstreamApp.Build(args).Run();
}
