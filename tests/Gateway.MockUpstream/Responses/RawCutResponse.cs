using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.WebUtilities;

namespace Gateway.MockUpstream.Responses;

/// <summary>
/// An HTTP/1.x response for <c>x-mock-fault: cut</c>, written straight to the socket and ended with
/// FIN in the middle of the body.
/// </summary>
/// <remarks>
/// Through Kestrel a cut is unreliable: a completed flush only means Kestrel took the bytes, and
/// HttpContext.Abort resets the connection, which can overtake them (the client then sees nothing
/// at all, not a truncated response). Writing to the socket puts the bytes in the kernel before the
/// send side is shut, so the client always reads the partial response and then a premature end.
/// HTTP/2 multiplexes streams on one socket, so there the cut stays with Kestrel (RST_STREAM, which
/// is ordered after the stream's data frames).
/// </remarks>
internal sealed class RawCutResponse
{
    // After FIN, how long to leave the connection to the client before aborting it in Kestrel.
    private const int AbortDelayMs = 500;

    private readonly HttpContext _context;
    private readonly Socket _socket;
    private bool _headSent;

    private RawCutResponse(HttpContext context, Socket socket)
    {
        _context = context;
        _socket = socket;
    }

    /// <summary>A raw writer for HTTP/1.x connections; null for HTTP/2 or when the socket is not exposed.</summary>
    public static RawCutResponse? TryCreate(HttpContext context)
    {
        var protocol = context.Request.Protocol;
        if (!HttpProtocol.IsHttp11(protocol) && !HttpProtocol.IsHttp10(protocol)) return null;
        var socket = context.Features.Get<IConnectionSocketFeature>()?.Socket;
        return socket is null ? null : new RawCutResponse(context, socket);
    }

    /// <summary>Sends status line and headers: a Content-Length when given, else chunked.</summary>
    public Task SendHeadAsync(int status, string contentType, long? contentLength = null)
    {
        if (_headSent) return Task.CompletedTask;
        _headSent = true;
        var head = new StringBuilder(160)
            .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {ReasonPhrases.GetReasonPhrase(status)}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Date: {DateTimeOffset.UtcNow:R}\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Type: {contentType}\r\n");
        if (contentLength is { } length) head.Append(CultureInfo.InvariantCulture, $"Content-Length: {length}\r\n");
        else head.Append("Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n");
        head.Append("\r\n");
        return SendAsync(Encoding.ASCII.GetBytes(head.ToString()));
    }

    /// <summary>Sends body bytes as they are (Content-Length responses).</summary>
    public Task SendAsync(ReadOnlyMemory<byte> bytes) => SendAllAsync(bytes);

    /// <summary>Sends one chunk of a chunked body.</summary>
    public async Task SendChunkAsync(ReadOnlyMemory<byte> bytes)
    {
        await SendAllAsync(Encoding.ASCII.GetBytes(bytes.Length.ToString("x", CultureInfo.InvariantCulture) + "\r\n"));
        await SendAllAsync(bytes);
        await SendAllAsync("\r\n"u8.ToArray());
    }

    /// <summary>Ends the response here: FIN after the bytes sent, then the connection is released.</summary>
    public async Task CutAsync()
    {
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // The client already closed: nothing left to cut.
        }
        catch (ObjectDisposedException)
        {
        }
        await Task.Delay(AbortDelayMs, CancellationToken.None);
        _context.Abort();
    }

    private async Task SendAllAsync(ReadOnlyMemory<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await _socket.SendAsync(bytes, SocketFlags.None, _context.RequestAborted);
            bytes = bytes[sent..];
        }
    }
}
