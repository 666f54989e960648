using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Gateway.Testing;

namespace Gateway.Benchmarks.OperatorScale;

/// <summary>
/// The operator as its own process (<c>dotnet Gateway.Operator.dll --source kubernetes</c>), so its CPU time and
/// working set are its own and not the bench's or the fake API server's. Output goes to a log file.
/// </summary>
public sealed class OperatorProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private OperatorProcess(Process process, int port, string logPath)
    {
        _process = process;
        Port = port;
        LogPath = logPath;
        Sampler = new ProcessSampler(process.Id);
    }

    public int Port { get; }
    public string LogPath { get; }
    public ProcessSampler Sampler { get; }
    public bool HasExited => _process.HasExited;

    public static OperatorProcess Start(string operatorDll, string kubeconfig, string ns, string postgres, string redisPrefix, string pepper, string logPath)
    {
        var port = FreePort();
        var psi = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = RepoPaths.Root,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[]
        {
            operatorDll, "--urls", $"http://127.0.0.1:{port}", "--source", "kubernetes", "--kubeconfig", kubeconfig, "--namespace", ns,
            "--ConnectionStrings:Postgres", postgres, "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:Pepper", pepper, "--TokenGate:Redis:KeyPrefix", redisPrefix,
        }) psi.ArgumentList.Add(a);
        foreach (var (k, v) in TestCredentialKeys.Environment) psi.Environment[k] = v;
        psi.Environment["DOTNET_gcServer"] = "0";
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the operator");
        var log = new StreamWriter(logPath) { AutoFlush = true };
        var gate = new Lock();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (gate) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (gate) log.WriteLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new OperatorProcess(process, port, logPath);
    }

    /// <summary>Sum of tokengate_operator_reconcile_total over kinds and results, from /metrics.</summary>
    public async Task<long> ReconcilesAsync(CancellationToken ct)
    {
        var text = await _http.GetStringAsync($"http://127.0.0.1:{Port}/metrics", ct);
        long total = 0;
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("tokengate_operator_reconcile_total", StringComparison.Ordinal)) continue;
            var value = line[(line.LastIndexOf(' ') + 1)..];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v)) total += (long)v;
        }
        return total;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
