using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>A response read off a raw socket; <see cref="Status"/> is 0 when the server closed without answering.</summary>
public sealed record RawResponse(int Status, Dictionary<string, string> Headers, byte[] Body, bool TimedOut)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var v) ? v : null;
}

/// <summary>
/// HTTP/1.1 over a bare socket, for what HttpClient refuses to send: conflicting framing, bytes that are not allowed in
/// headers, oversized heads, slow senders. Responses are parsed just enough to check them (status, headers, a body
/// framed by Content-Length, chunked encoding or the connection's end).
/// </summary>
public static class RawHttp
{
    /// <summary>Sends <paramref name="request"/> whole and reads one response, or what came before the deadline.</summary>
    /// <param name="halfClose">Shut the sending side after the request, as a client whose body ends early would.</param>
    public static async Task<RawResponse> SendAsync(Uri server, byte[] request, TimeSpan deadline, bool halfClose = false)
    {
        using var cts = new CancellationTokenSource(deadline);
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(server.Host), server.Port), cts.Token);
            try
            {
                await socket.SendAsync(request, SocketFlags.None, cts.Token);
                if (halfClose) socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // The server may answer (and close) before it read everything, e.g. 431 on a huge head: read the answer.
            }
            return await ReadResponseAsync(socket, cts.Token);
        }
        catch (OperationCanceledException)
        {
            return new RawResponse(0, [], [], TimedOut: true);
        }
    }

    /// <summary>
    /// Sends <paramref name="prefix"/> and then one byte of <paramref name="trickle"/> every <paramref name="interval"/>
    /// (a slowloris). Returns how long the server let it go on before it answered or closed, or null when the
    /// connection was still open after <paramref name="giveUp"/>.
    /// </summary>
    public static async Task<(TimeSpan? CutAfter, RawResponse? Response)> TrickleAsync(Uri server, byte[] prefix, byte[] trickle, TimeSpan interval, TimeSpan giveUp)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(server.Host), server.Port));
        var started = Stopwatch.StartNew();
        using var giveUpCts = new CancellationTokenSource(giveUp);
        // Watch for the server's answer or close while trickling.
        var reading = ReadResponseAsync(socket, giveUpCts.Token);
        try
        {
            await socket.SendAsync(prefix, SocketFlags.None);
            var i = 0;
            while (!reading.IsCompleted && !giveUpCts.IsCancellationRequested)
            {
                await Task.WhenAny(reading, Task.Delay(interval));
                if (reading.IsCompleted) break;
                await socket.SendAsync(new[] { trickle[i++ % trickle.Length] }, SocketFlags.None);
            }
        }
        catch (SocketException)
        {
            // Reset by the server: it cut us off.
        }
        RawResponse response;
        try
        {
            response = await reading;
        }
        catch (OperationCanceledException)
        {
            return (null, null);
        }
        return response.TimedOut ? (null, response) : (started.Elapsed, response);
    }

    private static async Task<RawResponse> ReadResponseAsync(Socket socket, CancellationToken cancellationToken)
    {
        var data = new MemoryStream();
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                if (TryParse(data.GetBuffer().AsSpan(0, (int)data.Length), complete: false, out var parsed)) return parsed!;
                int n;
                try
                {
                    n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken);
                }
                catch (SocketException)
                {
                    n = 0;
                }
                if (n == 0) break;
                data.Write(buffer, 0, n);
            }
        }
        catch (OperationCanceledException)
        {
            return TryParse(data.GetBuffer().AsSpan(0, (int)data.Length), complete: true, out var partial)
                ? partial! with { TimedOut = true }
                : new RawResponse(0, [], [], TimedOut: true);
        }
        return TryParse(data.GetBuffer().AsSpan(0, (int)data.Length), complete: true, out var final) ? final! : new RawResponse(0, [], [], TimedOut: false);
    }

    /// <summary>Parses a whole response; with <paramref name="complete"/> false, only when its body is known to be whole.</summary>
    private static bool TryParse(ReadOnlySpan<byte> data, bool complete, out RawResponse? response)
    {
        response = null;
        var end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0) return false;
        var head = Encoding.Latin1.GetString(data[..end]).Split("\r\n");
        var statusParts = head[0].Split(' ', 3);
        if (statusParts.Length < 2 || !int.TryParse(statusParts[1], out var status)) return false;
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in head.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0) headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        var body = data[(end + 4)..];
        if (headers.TryGetValue("Content-Length", out var cl) && long.TryParse(cl, out var length))
        {
            if (body.Length < length) { if (!complete) return false; }
            else body = body[..(int)length];
            response = new RawResponse(status, headers, body.ToArray(), false);
            return true;
        }
        if (headers.TryGetValue("Transfer-Encoding", out var te) && te.Contains("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var decoded = new MemoryStream();
            var rest = body;
            while (true)
            {
                var lineEnd = rest.IndexOf("\r\n"u8);
                if (lineEnd < 0) break;
                var sizeText = Encoding.ASCII.GetString(rest[..lineEnd]).Split(';')[0].Trim();
                if (!int.TryParse(sizeText, System.Globalization.NumberStyles.HexNumber, null, out var size)) break;
                if (size == 0)
                {
                    response = new RawResponse(status, headers, decoded.ToArray(), false);
                    return true;
                }
                if (rest.Length < lineEnd + 2 + size + 2) break;
                decoded.Write(rest.Slice(lineEnd + 2, size));
                rest = rest[(lineEnd + 2 + size + 2)..];
            }
            if (!complete) return false;
            response = new RawResponse(status, headers, decoded.ToArray(), false);
            return true;
        }
        // No framing: the body runs to the end of the connection (or is empty on a bodiless status).
        if (!complete && status is not (204 or 304) && status >= 200) return false;
        response = new RawResponse(status, headers, body.ToArray(), false);
        return true;
    }
}
