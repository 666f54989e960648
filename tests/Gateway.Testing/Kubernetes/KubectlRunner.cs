using System.Diagnostics;
using Xunit;

namespace Gateway.Testing.Kubernetes;

/// <summary>Runs the real kubectl against a kubeconfig (e.g. one pointing at <see cref="FakeApiServer"/>).</summary>
public sealed class KubectlRunner(string kubeconfigPath, string cacheDir)
{
    /// <summary>Runs kubectl with the arguments; fails the test with kubectl's stderr on a non-zero exit.</summary>
    public async Task<string> RunAsync(params string[] args)
    {
        var (code, stdout, stderr) = await TryRunAsync(args);
        Assert.True(code == 0, $"kubectl {string.Join(' ', args)} failed: {stderr}");
        return stdout;
    }

    /// <summary>Runs kubectl and returns its exit code and output without asserting.</summary>
    public async Task<(int ExitCode, string Stdout, string Stderr)> TryRunAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("kubectl") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("--kubeconfig=" + kubeconfigPath);
        psi.ArgumentList.Add("--cache-dir=" + cacheDir);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (p.ExitCode, await stdout, await stderr);
    }
}
