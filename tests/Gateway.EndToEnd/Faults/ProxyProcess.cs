using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Testing;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// A proxy replica as its own process (the built Gateway.Proxy.dll), joined to a <see cref="GatewayStack"/>: same
/// Redis prefix, pepper and credential keys. Unlike the in-process hosts it can be SIGKILLed mid-request.
/// </summary>
public sealed class ProxyProcess : IDisposable
{
    private readonly Process _process;

    private ProxyProcess(Process process, Uri url, Uri managementUrl)
    {
        _process = process;
        Url = url;
        ManagementUrl = managementUrl;
    }

    public Uri Url { get; }
    public Uri ManagementUrl { get; }

    /// <summary>Starts a replica and waits until it reports ready.</summary>
    public static async Task<ProxyProcess> StartAsync(GatewayStack stack, params string[] settings)
    {
        // The proxy project's own build output (same configuration as this test), which has its runtimeconfig.
        var configuration = AppContext.BaseDirectory.Contains("/bin/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        var dll = Path.Combine(RepoPaths.Root, "proxy", "Gateway.Proxy", "bin", configuration, "net10.0", "Gateway.Proxy.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException($"{dll} is missing: build the solution first.");
        var port = FreePort();
        var management = FreePort();
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in (string[])
                 [dll, "--urls", $"http://127.0.0.1:{port}", "--TokenGate:Management:Urls", $"http://127.0.0.1:{management}",
                  "--ConnectionStrings:Redis", stack.Redis, "--TokenGate:PepperFile", stack.PepperFile,
                  "--TokenGate:Credentials:KeysDirectory", stack.CredentialKeysDir, "--TokenGate:Redis:KeyPrefix", stack.RedisPrefix,
                  "--TokenGate:PricesDirectory", RepoPaths.Prices, "--Logging:LogLevel:Default", "Warning", .. settings])
        {
            info.ArgumentList.Add(arg);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("the proxy process did not start");
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var replica = new ProxyProcess(process, new Uri($"http://127.0.0.1:{port}/"), new Uri($"http://127.0.0.1:{management}/"));
        using var probe = new HttpClient();
        await Eventually.TrueAsync(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"the proxy process exited with {process.ExitCode}");
            try { return (await probe.GetAsync(new Uri(replica.ManagementUrl, "readyz"))).IsSuccessStatusCode; }
            catch (HttpRequestException) { return false; }
        }, "the proxy process to be ready");
        return replica;
    }

    /// <summary>SIGKILL: no shutdown, no settlement, like an evicted pod.</summary>
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
