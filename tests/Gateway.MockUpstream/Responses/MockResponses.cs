using Gateway.MockUpstream.Requests;

namespace Gateway.MockUpstream.Responses;

/// <summary>Writes a finished JSON body (with Content-Length), or half of it and aborts for <c>x-mock-fault: cut</c>.</summary>
internal static class MockResponses
{
    public const string JsonContentType = "application/json";

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
            context.Abort();
            return;
        }
        await response.BodyWriter.WriteAsync(body, context.RequestAborted);
    }
}
