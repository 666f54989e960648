using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gateway.Benchmarks.Baseline;

/// <summary>
/// <c>forward</c>: the least a .NET reverse proxy does — Kestrel in, SocketsHttpHandler out (the proxy's
/// handler settings), body buffered, response copied with a 16 KiB buffer — and nothing else: no keys,
/// no Redis, no metering. The gap between it and nginx is the platform's; the gap between it and the
/// TokenGate proxy is TokenGate's.
/// </summary>
public static class BareForwarder
{
    public static async Task<int> RunAsync(CommandLine args)
    {
        var upstream = args.Required("upstream").TrimEnd('/');
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(args.Required("urls"));
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            ActivityHeadersPropagator = null,
        }, disposeHandler: true);
        var app = builder.Build();
        long forwarded = 0;
        app.MapGet("/healthz", () => "ok");
        // "allocated-bytes requests", read by bench.sh around a run for the allocation per request.
        app.MapGet("/_stats", () => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{GC.GetTotalAllocatedBytes()} {Interlocked.Read(ref forwarded)}"));
        app.MapPost("/{**path}", (HttpContext context) =>
        {
            Interlocked.Increment(ref forwarded);
            return ForwardAsync(context, invoker, upstream);
        });
        await app.RunAsync();
        return 0;
    }

    private static async Task ForwardAsync(HttpContext context, HttpMessageInvoker invoker, string upstream)
    {
        var request = context.Request;
        var length = (int)(request.ContentLength ?? 0);
        var body = ArrayPool<byte>.Shared.Rent(Math.Max(length, 4096));
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var read = 0;
            while (true)
            {
                if (read == body.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(body.Length * 2);
                    body.AsSpan(0, read).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(body);
                    body = bigger;
                }
                var n = await request.Body.ReadAsync(body.AsMemory(read), context.RequestAborted);
                if (n == 0) break;
                read += n;
            }
            using var message = new HttpRequestMessage(HttpMethod.Post, upstream + request.Path.Value + request.QueryString.Value)
            {
                Content = new ByteArrayContent(body, 0, read),
            };
            message.Content.Headers.TryAddWithoutValidation("Content-Type", request.ContentType);
            message.Headers.TryAddWithoutValidation("Authorization", request.Headers.Authorization.ToString());
            using var response = await invoker.SendAsync(message, context.RequestAborted);
            var http = context.Response;
            http.StatusCode = (int)response.StatusCode;
            if (response.Content.Headers.ContentType is { } type) http.ContentType = type.ToString();
            if (response.Content.Headers.ContentLength is { } contentLength) http.ContentLength = contentLength;
            var sse = string.Equals(response.Content.Headers.ContentType?.MediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);
            if (sse) context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            await using var stream = await response.Content.ReadAsStreamAsync(context.RequestAborted);
            while (true)
            {
                var n = await stream.ReadAsync(buffer, context.RequestAborted);
                if (n == 0) break;
                await http.Body.WriteAsync(buffer.AsMemory(0, n), context.RequestAborted);
                if (sse) await http.Body.FlushAsync(context.RequestAborted);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(body);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
