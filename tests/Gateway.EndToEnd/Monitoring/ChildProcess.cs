using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Testing;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>
/// A TokenGate process started from its build output (<c>dotnet Gateway.X.dll</c>), as a deployment runs it:
/// its own process, configured by environment variables and arguments. Output lines are kept for assertions.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _stdout = new();
    private readonly ConcurrentQueue<string> _stderr = new();

    private ChildProcess(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) _stdout.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _stderr.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public IReadOnlyList<string> Stdout => [.. _stdout];
    public IReadOnlyList<string> Stderr => [.. _stderr];
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;

    /// <summary>The build output of a project of this repository, e.g. "proxy/Gateway.Proxy" (same configuration as the tests).</summary>
    public static string AppDll(string project)
    {
        // tests/Gateway.EndToEnd/bin/<Configuration>/net10.0/
        var configuration = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;
        var name = Path.GetFileName(project);
        var dll = Path.Combine(RepoPaths.Root, project, "bin", configuration, "net10.0", name + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is missing: build the solution first.", dll);
    }

    public static ChildProcess Start(string fileName, IEnumerable<string> arguments, IDictionary<string, string>? environment = null, string? workingDirectory = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        // A clean environment for the settings under test: none inherited from the test run.
        foreach (var key in info.Environment.Keys.Where(k => k.StartsWith("TokenGate__", StringComparison.Ordinal) || k.StartsWith("ConnectionStrings__", StringComparison.Ordinal) || k.StartsWith("ASPNETCORE_", StringComparison.Ordinal) || k.StartsWith("Logging__", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(key);
        info.Environment["DOTNET_ENVIRONMENT"] = "Production";
        info.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        if (environment is not null) foreach (var (k, v) in environment) info.Environment[k] = v;
        return new ChildProcess(Process.Start(info) ?? throw new InvalidOperationException($"{fileName} did not start."));
    }

    /// <summary>Starts an app of this repository with <c>dotnet exec</c>.</summary>
    public static ChildProcess StartApp(string project, IEnumerable<string> arguments, IDictionary<string, string>? environment = null) =>
        Start("dotnet", ["exec", AppDll(project), .. arguments], environment);

    /// <summary>The URLs Kestrel reported ("Now listening on: …"), in bind order.</summary>
    public async Task<IReadOnlyList<Uri>> ListeningUrlsAsync(int count, TimeSpan? timeout = null) =>
        await Eventually.ReturnsAsync(() =>
        {
            if (_process.HasExited) throw new InvalidOperationException($"The process exited with {_process.ExitCode}:\n{string.Join('\n', Stdout.TakeLast(40))}\n{string.Join('\n', Stderr)}");
            var urls = Stdout.Select(ListeningUrl).Where(u => u is not null).Select(u => new Uri(u!)).ToList();
            return Task.FromResult(urls.Count >= count ? (IReadOnlyList<Uri>?)urls : null);
        }, "the process to listen", timeout ?? TimeSpan.FromSeconds(60));

    // "Now listening on: URL" in the text format, or the "address" parameter of that message in the JSON format.
    private static string? ListeningUrl(string line)
    {
        var i = line.IndexOf("Now listening on: ", StringComparison.Ordinal);
        if (i < 0) return null;
        if (!line.StartsWith('{')) return line[(i + 18)..].Trim();
        using var doc = System.Text.Json.JsonDocument.Parse(line);
        return doc.RootElement.GetProperty("State").GetProperty("address").GetString();
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        // Let the asynchronous readers drain what is left.
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>A TCP port that was free a moment ago, for programs that cannot report a dynamic port (Prometheus).</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }
}
