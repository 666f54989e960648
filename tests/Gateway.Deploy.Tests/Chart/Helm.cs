using System.Diagnostics;
using Gateway.Testing;

namespace Gateway.Deploy.Tests.Chart;

/// <summary>
/// Runs the real Helm 3: <c>.tools/helm/helm</c> (installed by config/local/tools.sh, which .ci/run and make test
/// call), else <c>helm</c> on PATH. Missing Helm fails the test: CI installs it, so absence is a broken setup.
/// </summary>
public static class Helm
{
    public static string ChartDirectory => Path.Combine(RepoPaths.Root, "charts", "tokengate");

    public static string ValuesFile(string name) => Path.Combine(ChartDirectory, "ci", name);

    public static string Executable { get; } = Find();

    private static string Find()
    {
        var local = Path.Combine(RepoPaths.Root, ".tools", "helm", "helm");
        if (File.Exists(local)) return local;
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "helm");
            if (File.Exists(candidate)) return candidate;
        }
        return "";
    }

    /// <summary>Runs helm with the arguments; fails the test with helm's stderr on a non-zero exit.</summary>
    public static async Task<string> RunAsync(params string[] args)
    {
        var (code, stdout, stderr) = await TryRunAsync(args);
        Assert.True(code == 0, $"helm {string.Join(' ', args)} exited {code}:\n{stderr}\n{stdout}");
        return stdout;
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> TryRunAsync(params string[] args)
    {
        Assert.True(Executable.Length > 0,
            "Helm 3 is not installed: run `bash config/local/tools.sh` (or `make tools`), which puts it at .tools/helm/helm. " +
            ".ci/run and make test install it; the chart tests need it.");
        var psi = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Keep helm's cache and config out of the user's home.
        var home = Path.Combine(Path.GetTempPath(), "tg-helm-home");
        psi.Environment["HELM_CACHE_HOME"] = Path.Combine(home, "cache");
        psi.Environment["HELM_CONFIG_HOME"] = Path.Combine(home, "config");
        psi.Environment["HELM_DATA_HOME"] = Path.Combine(home, "data");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>
    /// <c>helm template</c> of the chart as release <paramref name="release"/> in <paramref name="ns"/> with the
    /// given values files and --set pairs, parsed into objects.
    /// </summary>
    public static async Task<Manifests> TemplateAsync(string release = "tokengate", string ns = "tokengate-system",
        string[]? valuesFiles = null, string[]? set = null, bool includeCrds = false)
    {
        var args = new List<string> { "template", release, ChartDirectory, "--namespace", ns };
        foreach (var f in valuesFiles ?? []) args.AddRange(["-f", ValuesFile(f)]);
        foreach (var s in set ?? []) args.AddRange(["--set", s]);
        if (includeCrds) args.Add("--include-crds");
        return Manifests.Parse(await RunAsync([.. args]));
    }
}
