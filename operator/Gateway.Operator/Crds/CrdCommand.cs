namespace Gateway.Operator.Crds;

/// <summary><c>Gateway.Operator crds --out DIR</c>: writes the generated CRDs, one file per resource.</summary>
public static class CrdCommand
{
    /// <summary>Writes every CRD into <paramref name="outDir"/> (created if missing); returns the exit code.</summary>
    public static int Run(string outDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(outDir);
        Directory.CreateDirectory(outDir);
        foreach (var (fileName, yaml) in CrdGenerator.GenerateAll())
        {
            var path = Path.Combine(outDir, fileName);
            File.WriteAllText(path, yaml);
            Console.WriteLine($"wrote {path}");
        }
        return 0;
    }

    /// <summary>Parses <c>crds [--out DIR]</c> (DIR defaults to config/crd) and runs.</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var outDir = "config/crd";
        for (var i = 1; i < args.Length; i++)
        {
            if (args[i] is "--out" or "-o" && i + 1 < args.Length) outDir = args[++i];
            else if (args[i].StartsWith("--out=", StringComparison.Ordinal)) outDir = args[i]["--out=".Length..];
            else
            {
                Console.Error.WriteLine($"Unknown argument '{args[i]}'. Usage: crds --out <dir>");
                return 2;
            }
        }
        return Run(ResolveFromInvokingShell(outDir));
    }

    // `dotnet run` starts web projects in the project folder (the Web SDK sets RunWorkingDirectory),
    // so "--out config/crd" would land under operator/Gateway.Operator. A relative path is meant
    // relative to where the user typed the command, which the shell still reports in PWD.
    internal static string ResolveFromInvokingShell(string path)
    {
        if (Path.IsPathRooted(path)) return path;
        var pwd = Environment.GetEnvironmentVariable("PWD");
        return !string.IsNullOrEmpty(pwd) && Path.IsPathRooted(pwd) && Directory.Exists(pwd) ? Path.Combine(pwd, path) : Path.GetFullPath(path);
    }
}
