using System.Diagnostics;
using Gateway.Deploy.Tests.Chart;
using Gateway.Testing;

namespace Gateway.Deploy.Tests.Publish;

/// <summary>
/// Once per test class: `dotnet publish -c Release` of the operator, proxy and portal (as the Dockerfiles do) into a
/// temporary folder made read-only, and the chart rendered with its default values.
/// </summary>
public sealed class PublishedApps : IAsyncLifetime
{
    public static readonly (string Component, string Project)[] Apps =
    [
        ("operator", "operator/Gateway.Operator/Gateway.Operator.csproj"),
        ("proxy", "proxy/Gateway.Proxy/Gateway.Proxy.csproj"),
        ("portal", "portal/Gateway.Portal/Gateway.Portal.csproj"),
    ];

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "tg-deploy-" + Guid.NewGuid().ToString("N")[..10]);
    public Manifests Chart { get; private set; } = null!;
    public TimeSpan PublishTime { get; private set; }

    public string AppDirectory(string component) => Path.Combine(Root, "app-" + component);

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Root);
        File.SetUnixFileMode(Root, ReadableDirectory);
        Chart = await Helm.TemplateAsync();
        var watch = Stopwatch.StartNew();
        // One at a time: they share Gateway.Core's Release build output.
        foreach (var (component, project) in Apps)
        {
            await RunAsync("dotnet", "publish", Path.Combine(RepoPaths.Root, project), "-c", "Release", "-o", AppDirectory(component),
                "--no-restore", "-p:UseAppHost=false", "-nologo", "-v", "q", "-clp:NoSummary");
        }
        PublishTime = watch.Elapsed;
        // The image's /app: owned by root, nothing writable for the pod's user.
        foreach (var (component, _) in Apps) MakeReadOnly(AppDirectory(component));
    }

    public Task DisposeAsync()
    {
        try { Directory.Delete(Root, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Task.CompletedTask;
    }

    private const UnixFileMode ReadableDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private static void MakeReadOnly(string directory)
    {
        foreach (var file in Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories))
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
        foreach (var dir in Directory.EnumerateDirectories(directory, "*", SearchOption.AllDirectories).Append(directory))
        {
            File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserExecute | UnixFileMode.GroupRead
                | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }
    }

    public static async Task<(int ExitCode, string Output)> TryRunAsync(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(8));
        return (p.ExitCode, await stdout + await stderr);
    }

    private static async Task RunAsync(string file, params string[] args)
    {
        var (code, output) = await TryRunAsync(file, args);
        Assert.True(code == 0, $"{file} {string.Join(' ', args)} exited {code}:\n{output}");
    }
}
