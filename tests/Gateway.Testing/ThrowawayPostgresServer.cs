using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Gateway.Testing;

/// <summary>
/// A private PostgreSQL 15 server (initdb in a temporary folder, a free loopback port), for tests that stop and start
/// PostgreSQL; the shared server of <c>make services</c> must never be disturbed. Run as the postgres user when the
/// tests run as root (PostgreSQL refuses root), like config/local/services.sh.
/// </summary>
public sealed class ThrowawayPostgresServer : IAsyncDisposable
{
    private static readonly string Bin = Environment.GetEnvironmentVariable("PG_BIN") ?? "/usr/lib/postgresql/15/bin";
    private readonly string _directory;

    private ThrowawayPostgresServer(int port, string directory)
    {
        Port = port;
        _directory = directory;
    }

    public int Port { get; }

    /// <summary>A connection string to <paramref name="database"/> on this server.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port.ToString(CultureInfo.InvariantCulture)};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=20";

    /// <summary>Initialises and starts a server, and creates <paramref name="database"/>.</summary>
    public static async Task<ThrowawayPostgresServer> StartAsync(string database = "tokengate")
    {
        var root = Path.Combine(Path.GetTempPath(), "tg-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        var data = Path.Combine(root, "data");
        var server = new ThrowawayPostgresServer(FreeLoopbackPort(), data);
        try
        {
            if (IsRoot) await RunAsync("chown", "postgres:", root);
            await RunAsPostgresAsync(Path.Combine(Bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8");
            // fsync off risks data only when the OS crashes, which these tests never do; synchronous_commit stays on:
            // with it off, a COMMIT is acknowledged before its WAL is written, and an immediate stop loses the last
            // acknowledged transactions (the conservation checker caught exactly that: a usage batch the ledger writer
            // had acknowledged was gone after the restart).
            await File.AppendAllTextAsync(Path.Combine(data, "postgresql.conf"),
                $"\nlisten_addresses = '127.0.0.1'\nport = {server.Port}\nunix_socket_directories = ''\nfsync = off\nfull_page_writes = off\n");
            await server.StartServerAsync();
            await using var connection = new NpgsqlConnection(server.ConnectionString());
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", connection);
            await create.ExecuteNonQueryAsync();
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts the server again after <see cref="StopAsync"/> and waits until it accepts connections.</summary>
    public Task StartServerAsync() =>
        RunAsPostgresAsync(Path.Combine(Bin, "pg_ctl"), "-D", _directory, "-l", Path.Combine(_directory, "server.log"), "-w", "-t", "120", "start");

    /// <summary>Stops the server at once ("immediate": no checkpoint, connections cut, like a crashed database).</summary>
    public Task StopAsync() => RunAsPostgresAsync(Path.Combine(Bin, "pg_ctl"), "-D", _directory, "-m", "immediate", "-w", "-t", "120", "stop");

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try { await StopAsync(); } catch (InvalidOperationException) { }
        try { Directory.Delete(Path.GetDirectoryName(_directory)!, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static bool IsRoot => Environment.UserName == "root";

    private static Task RunAsPostgresAsync(string file, params string[] args) =>
        IsRoot ? RunAsync("runuser", ["-u", "postgres", "--", file, .. args]) : RunAsync(file, args);

    private static async Task RunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        foreach (var a in args) info.ArgumentList.Add(a);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args.Take(2))} exited with {process.ExitCode}: {await stderr}{await stdout}");
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
