using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Testing;

/// <summary>
/// A private redis-server child process on a free loopback port, for tests that stop and restart Redis
/// (the shared server at <see cref="TestEnvironment.Redis"/> must never be disturbed). Only the process
/// started here is ever killed.
/// </summary>
public sealed class ThrowawayRedisServer : IAsyncDisposable
{
    private readonly string? _password;
    private readonly bool _appendOnly;
    private readonly string _directory;
    private Process? _process;

    private ThrowawayRedisServer(int port, string? password, bool appendOnly)
    {
        Port = port;
        _password = password;
        _appendOnly = appendOnly;
        _directory = Path.Combine(Path.GetTempPath(), "tg-redis-" + port.ToString(CultureInfo.InvariantCulture) + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
    }

    public int Port { get; }

    /// <summary>"127.0.0.1:port" (without the password).</summary>
    public string Address => "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>Starts redis-server on a free port and waits until it accepts connections. Persistence is off unless
    /// <paramref name="appendOnly"/>: then every write is in its append-only file (appendfsync always) before it is
    /// acknowledged, so a SIGKILL loses nothing and <see cref="RestartAsync"/> brings the data back.</summary>
    public static async Task<ThrowawayRedisServer> StartAsync(string? password = null, bool appendOnly = false)
    {
        var server = new ThrowawayRedisServer(FreeLoopbackPort(), password, appendOnly);
        try
        {
            await server.RestartAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the server again on the same port (after <see cref="Kill"/>).</summary>
    public async Task RestartAsync()
    {
        if (IsRunning) throw new InvalidOperationException("The throw-away redis-server is already running.");
        var info = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in (string[])["--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", _appendOnly ? "yes" : "no", "--appendfsync", "always", "--daemonize", "no", "--dir", _directory, "--loglevel", "warning"])
        {
            info.ArgumentList.Add(arg);
        }
        if (_password is not null)
        {
            info.ArgumentList.Add("--requirepass");
            info.ArgumentList.Add(_password);
        }
        var process = Process.Start(info) ?? throw new InvalidOperationException("redis-server did not start.");
        // Drain output so the child never blocks on a full pipe.
        process.OutputDataReceived += static (_, _) => { };
        process.ErrorDataReceived += static (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await Eventually.TrueAsync(async () =>
        {
            if (process.HasExited) throw new InvalidOperationException($"redis-server exited with code {process.ExitCode}.");
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await probe.ConnectAsync(IPAddress.Loopback, Port);
                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }, "the throw-away redis-server to accept connections");
    }

    /// <summary>Kills the server process (SIGKILL: no clean shutdown, like a crashed or evicted pod).</summary>
    public void Kill()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            process.Kill();
            process.WaitForExit();
        }
        process.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
        return ValueTask.CompletedTask;
    }

    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
