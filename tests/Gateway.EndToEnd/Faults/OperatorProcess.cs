using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// An operator replica as its own process (the built Gateway.Operator.dll) with the Kubernetes source, as a pod of the
/// Deployment would run: unlike an in-process host it can be SIGKILLed, leaving its Lease, its Redis connections and
/// its usage-stream reads exactly as a crashed pod leaves them.
/// </summary>
public sealed class OperatorProcess : IDisposable
{
    private const int LogLines = 200;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();

    private OperatorProcess(Process process, string name, Uri url)
    {
        _process = process;
        Name = name;
        Url = url;
    }

    /// <summary>The pod name (POD_NAME): the Lease identity is this plus a random suffix.</summary>
    public string Name { get; }

    /// <summary>The ledger writer's consumer name in the usage stream's group (one per pod, as host names are).</summary>
    public string LedgerConsumer => "ledger-" + Name;

    public Uri Url { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>Whether <paramref name="holderIdentity"/> (a Lease's) is this replica's.</summary>
    public bool Holds(string? holderIdentity) => holderIdentity is not null && holderIdentity.StartsWith(Name + "-", StringComparison.Ordinal);

    /// <summary>The last lines the process wrote (warnings and leader-election messages), for failure messages.</summary>
    public string RecentLog => string.Join(Environment.NewLine, _log);

    /// <summary>Starts a replica and waits until it reports ready (schema migrated, Redis connected).</summary>
    /// <param name="name">Pod name; unique per incarnation, as a replacement pod's is.</param>
    /// <param name="args">The stack's connection and key settings, and the Kubernetes source's.</param>
    public static async Task<OperatorProcess> StartAsync(string name, IEnumerable<string> args)
    {
        // The operator project's own build output (same configuration as this test), which has its runtimeconfig.
        var configuration = AppContext.BaseDirectory.Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(RepoPaths.Root, "operator", "Gateway.Operator", "bin", configuration, "net10.0", "Gateway.Operator.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: build the solution first.");
        var port = FreePort();
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.Environment["POD_NAME"] = name;
        foreach (var arg in (string[])
                 [dll, "--urls", $"http://127.0.0.1:{port}", "--TokenGate:Ledger:ConsumerName", "ledger-" + name,
                  "--Logging:LogLevel:Default", "Warning", "--Logging:LogLevel:Gateway.Kubernetes.LeaderElection", "Information", .. args])
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("the operator process did not start");
        var replica = new OperatorProcess(process, name, new Uri($"http://127.0.0.1:{port}/"));
        process.OutputDataReceived += (_, e) => replica.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => replica.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var probe = new HttpClient();
        await Eventually.TrueAsync(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"the operator process {name} exited with {process.ExitCode}:\n{replica.RecentLog}");
            try { return (await probe.GetAsync(new Uri(replica.Url, "readyz"))).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, $"the operator process {name} to be ready");
        return replica;
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        _log.Enqueue(line);
        while (_log.Count > LogLines) _log.TryDequeue(out _);
    }

    /// <summary>SIGKILL: no shutdown, no lease release, no acknowledgement of what it read, like an evicted pod.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
