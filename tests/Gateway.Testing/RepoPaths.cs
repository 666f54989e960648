namespace Gateway.Testing;

/// <summary>Locates files of the repository from a test's output directory.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Samples => Path.Combine(Root, "config", "samples");
    public static string Prices => Path.Combine(Root, "config", "prices");

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Gateway.sln not found above " + AppContext.BaseDirectory);
    }
}
