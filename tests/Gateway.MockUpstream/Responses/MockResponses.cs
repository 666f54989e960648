using System.Net.Sockets;
using Gateway.MockUpstream.Requests;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.MockUpstream.Responses;

/// <summary>Writes a finished JSON body (with Content-Length), or half of it and aborts for <c>x-mock-fault: cut</c>.</summary>
internal static class MockResponses
{
    public const string JsonContentType = "application/json";

    // Pause before cutting a connection; only x-mock-fault: cut pays it.
    private const int CutGraceMs = 100;

    public static async Task WriteJsonAsync(HttpContext context, int status, JsonBuffer buffer, MockFault fault)
    {
        buffer.Writer.Flush();
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = JsonContentType;
        response.ContentLength = buffer.WrittenCount;
        var body = buffer.WrittenMemory;
        if (fault == MockFault.Cut)
        {
            // Headers promise the full length; the client gets half and then a dead connection.
            await response.BodyWriter.WriteAsync(body[..(body.Length / 2)], context.RequestAborted);
            await CutConnectionAsync(context);
            return;
        }
        await response.BodyWriter.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>Ends the connection mid-response: the client gets what was written, then a premature end.</summary>
    public static async Task CutConnectionAsync(HttpContext context)
    {
        // A completed flush only means Kestrel took the bytes, not that they are on the wire, and
        // HttpContext.Abort resets the connection, which can overtake them: the client would see
        // nothing at all. So: give the transport a moment to send, close the sending side (FIN after
        // the data, which the client reads as a truncated body), and only then abort.
        await Task.Delay(CutGraceMs, CancellationToken.None);
        try
        {
            context.Features.Get<IConnectionSocketFeature>()?.Socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // Already closed by the client: nothing left to cut.
        }
        catch (ObjectDisposedException)
        {
        }
        await Task.Delay(CutGraceMs / 2, CancellationToken.None);
        context.Abort();
    }
}
