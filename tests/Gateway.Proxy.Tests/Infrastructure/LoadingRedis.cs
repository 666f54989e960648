using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Proxy.Tests.Infrastructure;

/// <summary>
/// A RESP server that behaves like Redis while it loads its dataset after a restart: it accepts connections and
/// subscriptions, and answers every other command with <c>-LOADING</c>. Counts the commands it refused that way.
/// </summary>
public sealed class LoadingRedis : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private int _refused;

    public LoadingRedis()
    {
        _listener.Start();
        _accept = AcceptAsync();
    }

    public string Address => "127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Commands answered with LOADING so far.</summary>
    public int Refused => Volatile.Read(ref _refused);

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                _ = ServeAsync(client);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var reader = new BufferedStream(stream);
                while (!_stop.IsCancellationRequested)
                {
                    var command = await ReadCommandAsync(reader);
                    if (command is null) return;
                    var name = command[0].ToUpperInvariant();
                    string reply;
                    if (name is "SUBSCRIBE" or "PSUBSCRIBE" or "UNSUBSCRIBE" or "PUNSUBSCRIBE")
                    {
                        var sb = new StringBuilder();
                        var subscribing = !name.Contains("UNSUB", StringComparison.Ordinal);
                        for (var i = 1; i < command.Count; i++)
                            sb.Append($"*3\r\n${name.Length}\r\n{name.ToLowerInvariant()}\r\n${Encoding.UTF8.GetByteCount(command[i])}\r\n{command[i]}\r\n:{(subscribing ? i : command.Count - 1 - i)}\r\n");
                        reply = sb.ToString();
                    }
                    else if (name is "PING") reply = "+PONG\r\n";
                    else
                    {
                        Interlocked.Increment(ref _refused);
                        reply = "-LOADING Redis is loading the dataset in memory\r\n";
                    }
                    var bytes = Encoding.UTF8.GetBytes(reply);
                    await stream.WriteAsync(bytes, _stop.Token);
                }
            }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }
    }

    private static async Task<List<string>?> ReadCommandAsync(Stream s)
    {
        var header = await ReadLineAsync(s);
        if (header is null || header.Length == 0 || header[0] != '*') return null;
        var count = int.Parse(header.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
        var parts = new List<string>(count);
        for (var i = 0; i < count; i++)
        {
            var len = await ReadLineAsync(s);
            if (len is null || len[0] != '$') return null;
            var n = int.Parse(len.AsSpan(1), System.Globalization.CultureInfo.InvariantCulture);
            var buffer = new byte[n + 2];
            await s.ReadExactlyAsync(buffer);
            parts.Add(Encoding.UTF8.GetString(buffer, 0, n));
        }
        return parts;
    }

    private static async Task<string?> ReadLineAsync(Stream s)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            if (await s.ReadAsync(one) == 0) return null;
            if (one[0] == '\n') return sb.ToString().TrimEnd('\r');
            sb.Append((char)one[0]);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try { await _accept; } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
