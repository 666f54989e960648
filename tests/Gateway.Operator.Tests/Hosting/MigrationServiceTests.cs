using System.Net;
using System.Net.Sockets;
using Gateway.Operator.Hosting;
using Gateway.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Operator.Tests.Hosting;

public sealed class MigrationServiceTests
{
    [Fact]
    public async Task Keeps_retrying_when_PostgreSQL_accepts_but_never_answers()
    {
        // A listener that accepts connections and stays silent makes Npgsql time out on connect.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accepted = 0;
        var held = new List<TcpClient>();
        using var stop = new CancellationTokenSource();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var c = await listener.AcceptTcpClientAsync(stop.Token);
                    lock (held) held.Add(c);
                    Interlocked.Increment(ref accepted);
                }
            }
            catch (OperationCanceledException) { }
        });

        var state = new MigrationState();
        var service = new MigrationService($"Host=127.0.0.1;Port={port};Username=postgres;Database=x;Timeout=1;Pooling=false", state, NullLogger<MigrationService>.Instance);
        using var cts = new CancellationTokenSource();
        var start = service.StartAsync(cts.Token);

        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref accepted) >= 2), "a second connection attempt after the first timed out", TimeSpan.FromSeconds(20));
        Assert.False(start.IsCompleted, "the service must keep waiting for PostgreSQL, not crash or give up");
        Assert.False(state.Done);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => start);
        await stop.CancelAsync();
        await acceptLoop;
        lock (held) foreach (var c in held) c.Dispose();
    }
}
