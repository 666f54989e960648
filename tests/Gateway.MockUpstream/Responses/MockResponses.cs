using Gateway.MockUpstream.Requests;

namespace Gateway.MockUpstream.Responses;

/// <summary>Writes a finished JSON body (with Content-Length), or half of it and aborts for <c>x-mock-fault: cut</c>.</summary>
internal static class MockResponses
{
    public const string JsonContentType = "application/json";

    public static async Task WriteJsonAsync(HttpContext context, int status, JsonBuffer buffer, MockFault fault)
    {
        buffer.Writer.Flush();
        var body = buffer.WrittenMemory;
        if (fault == MockFault.Cut)
        {
            // Headers promise the full length; the client gets half and then a closed connection.
            await CutJsonAsync(context, status, body);
            return;
        }
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = JsonContentType;
        response.ContentLength = body.Length;
        await response.BodyWriter.WriteAsync(body, context.RequestAborted);
    }

    private static async Task CutJsonAsync(HttpContext context, int status, ReadOnlyMemory<byte> body)
    {
        var half = body[..(body.Length / 2)];
        if (RawCutResponse.TryCreate(context) is { } raw)
        {
            await raw.SendHeadAsync(status, JsonContentType, body.Length);
            await raw.SendAsync(half);
            await raw.CutAsync();
            return;
        }
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = JsonContentType;
        response.ContentLength = body.Length;
        await response.BodyWriter.WriteAsync(half, context.RequestAborted);
        context.Abort();
    }
}
