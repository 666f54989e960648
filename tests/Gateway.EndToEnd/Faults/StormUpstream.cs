using System.Text;
using Gateway.MockUpstream;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.EndToEnd.Faults;

/// <summary>A fault an upstream account suffers for a while (issue #12, item 2: upstream faults from the mock).</summary>
public enum Storm
{
    None,
    /// <summary>Every response starts long after the proxy's time-to-first-byte deadline.</summary>
    SlowFirstByte,
    /// <summary>Every response sends its headers and a little of its body, then the connection ends (the mock's cut).</summary>
    CutMidStream,
    /// <summary>Every response is a 200 whose body is not what the provider's format says: SSE events with broken JSON and
    /// no usage, or a JSON body cut off mid-value, complete at the HTTP level.</summary>
    MalformedSse,
    /// <summary>Every request gets a 429 with Retry-After.</summary>
    RateLimited,
    /// <summary>The server is gone: connections are refused.</summary>
    Refused,
}

/// <summary>
/// The mock upstream behind one account, with a switch that puts every request it receives into a <see cref="Storm"/>
/// (the mock's own fault controls are per request, through headers a proxy forwards; here the account itself is
/// broken, whoever sends). <see cref="Storm.Refused"/> stops the server and starting the storm's end brings it back
/// on the same port. Counts the requests it answered normally, and when the first came after a storm.
/// </summary>
public sealed class StormUpstream : IAsyncDisposable
{
    /// <summary>Retry-After of the 429 storm, seconds.</summary>
    public const int RetryAfterSeconds = 2;

    private WebApplication? _app;
    private int _port;
    private volatile Storm _storm;
    private long _served;
    private long _faulted;
    private long _firstServedAfterStorm;   // DateTime ticks (UTC) of the first normal answer after the last storm ended; 0 = none yet

    public Uri BaseUrl { get; private set; } = null!;
    public Storm Current => _storm;
    /// <summary>Requests answered normally (no storm).</summary>
    public long Served => Interlocked.Read(ref _served);
    /// <summary>Requests that met a storm.</summary>
    public long Faulted => Interlocked.Read(ref _faulted);

    /// <summary>When the first request after the last storm's end was answered normally, or null.</summary>
    public DateTime? FirstServedAfterStorm => Interlocked.Read(ref _firstServedAfterStorm) is var t and > 0 ? new DateTime(t, DateTimeKind.Utc) : null;

    public static async Task<StormUpstream> StartAsync()
    {
        var upstream = new StormUpstream();
        await upstream.StartServerAsync(0);
        return upstream;
    }

    public async Task BeginAsync(Storm storm)
    {
        Interlocked.Exchange(ref _firstServedAfterStorm, 0);
        _storm = storm;
        if (storm == Storm.Refused && _app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    public async Task EndAsync()
    {
        var was = _storm;
        Interlocked.Exchange(ref _firstServedAfterStorm, 0);
        _storm = Storm.None;
        // Back on the same port (the account's baseUrl); another process may briefly hold it, so retry.
        if (was == Storm.Refused) await Gateway.Testing.Eventually.TrueAsync(async () =>
        {
            try
            {
                await StartServerAsync(_port);
                return true;
            }
            catch (Exception e) when (e is IOException or InvalidOperationException)
            {
                return false;
            }
        }, "the storm upstream to listen again on its port");
    }

    private async Task StartServerAsync(int port)
    {
        var app = MockUpstreamApp.Build(["--urls", $"http://127.0.0.1:{port}"], b =>
        {
            b.Logging.SetMinimumLevel(LogLevel.Warning);
            b.Services.AddSingleton<IStartupFilter>(new StormFilter(this));
        });
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        _app = app;
        var address = new Uri(app.Urls.First());
        _port = address.Port;
        BaseUrl = new Uri($"http://127.0.0.1:{_port}/");
    }

    /// <summary>In front of the mock's own pipeline: applies the storm to the API routes.</summary>
    private sealed class StormFilter(StormUpstream owner) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(owner.HandleAsync);
            next(app);
        };
    }

    private async Task HandleAsync(HttpContext context, RequestDelegate next)
    {
        if (!context.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal))
        {
            await next(context);
            return;
        }
        var storm = _storm;
        if (storm == Storm.None)
        {
            await next(context);
            Interlocked.Increment(ref _served);
            Interlocked.CompareExchange(ref _firstServedAfterStorm, DateTime.UtcNow.Ticks, 0);
            return;
        }
        Interlocked.Increment(ref _faulted);
        var headers = context.Request.Headers;
        switch (storm)
        {
            case Storm.SlowFirstByte:
                headers["x-mock-latency-ms"] = "60000";
                break;
            case Storm.CutMidStream:
                headers["x-mock-fault"] = "cut";
                break;
            case Storm.RateLimited:
                headers["x-mock-status"] = "429";
                headers["x-mock-retry-after"] = RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                break;
            case Storm.MalformedSse:
                await WriteMalformedAsync(context);
                return;
        }
        await next(context);
    }

    /// <summary>A 200 the provider would never send: events whose JSON breaks off, a line that is not a field, no usage and
    /// no [DONE] (streams); a JSON body cut off mid-string (non-streaming). Complete at the HTTP level.</summary>
    private static async Task WriteMalformedAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        var stream = body.Contains("\"stream\":true", StringComparison.Ordinal);
        context.Response.StatusCode = 200;
        if (stream)
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(
                "data: {\"id\":\"chatcmpl-storm\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\n\n"
                + "this line is not an SSE field\n\n"
                + "data: {\"usage\": {\"prompt_tokens\": \"many\", \"completion_tokens\": -5}\n\n"
                + "event: \u0001\ndata: \n\n", context.RequestAborted);
        }
        else
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("{\"id\":\"chatcmpl-storm\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hel",
                context.RequestAborted);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is { } app)
        {
            _app = null;
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }
}
