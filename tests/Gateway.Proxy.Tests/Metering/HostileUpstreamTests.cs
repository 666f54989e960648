using System.Net;
using System.Text;
using Gateway.Core.Usage;
using Gateway.Proxy.Metering;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Tests.Metering;

/// <summary>
/// Issue #12, item 4: upstreams that misbehave — absurd, negative or broken usage, events larger than the parser's
/// limit, bodies without newlines, streams that never end, responses far larger than asked. The proxy forwards what
/// it can, ends what never ends, stays within its limits, never answers 500 for them, and meters sanely: missing or
/// invalid counts are estimated, absurd ones capped at what the request could use, the event is flagged estimated,
/// and no charge is ever negative.
/// </summary>
public sealed class HostileUpstreamTests : IAsyncLifetime
{
    private HostileUpstream _upstream = null!;
    private ProxyHarness? _h;

    public async Task InitializeAsync() => _upstream = await HostileUpstream.StartAsync(HandleAsync);

    public async Task DisposeAsync()
    {
        if (_h is not null) await _h.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    /// <summary>The proxy in front of the hostile upstream; <paramref name="totalTimeoutSeconds"/> bounds every exchange.</summary>
    private async Task<ProxyHarness> ProxyAsync(int? totalTimeoutSeconds = null) => _h ??= await ProxyHarness.StartAsync(
        settings: totalTimeoutSeconds is { } t
            ? new Dictionary<string, string?>
            {
                ["TokenGate:Proxy:UpstreamTotalTimeoutSeconds"] = t.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["TokenGate:Proxy:UpstreamTimeToFirstByteSeconds"] = t.ToString(System.Globalization.CultureInfo.InvariantCulture),
            }
            : null,
        upstreams: h => [h.MockUpstream() with { BaseUrl = new Uri(_upstream.BaseUrl, "v1").ToString() }]);

    private static string Chunk(string text) =>
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + text + "\"}}]}\n\n";

    private const string Done = "data: [DONE]\n\n";

    private static string Reply(string usage, string text = "hello there general kenobi") =>
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\""
        + text + "\"},\"finish_reason\":\"stop\"}],\"usage\":" + usage + "}";

    /// <summary>What the upstream does, by the request's x-hostile header (client headers pass through the proxy).</summary>
    private static async Task HandleAsync(HttpContext context)
    {
        var mode = context.Request.Headers["x-hostile"].ToString();
        var response = context.Response;
        var sse = mode is "broken-usage-stream" or "huge-event" or "no-newlines" or "endless";
        response.ContentType = sse ? "text/event-stream" : "application/json";
        var ct = context.RequestAborted;
        switch (mode)
        {
            case "negative-usage":
                await response.WriteAsync(Reply("""{"prompt_tokens":-5,"completion_tokens":-7,"total_tokens":-12}"""), ct);
                break;
            case "absurd-usage":
                await response.WriteAsync(Reply("""{"prompt_tokens":9000000000000000,"completion_tokens":9000000000000000,"total_tokens":18000000000000000}"""), ct);
                break;
            case "fractional-usage":
                await response.WriteAsync(Reply("""{"prompt_tokens":1e300,"completion_tokens":"many","total_tokens":null}"""), ct);
                break;
            case "plausible-usage":
                await response.WriteAsync(Reply("""{"prompt_tokens":20,"completion_tokens":120,"total_tokens":140}"""), ct);
                break;
            case "broken-usage-stream":
                await response.WriteAsync(Chunk("hello") + Chunk(" world"), ct);
                await response.WriteAsync("data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tok\n\n" + Done, ct);
                break;
            case "huge-event":
                // One event of 6 MB (over the parser's 4 MB limit), then an ordinary stream with its usage.
                await response.WriteAsync("data: {\"pad\":\"" + new string('x', 6 * 1024 * 1024) + "\"}\n\n", ct);
                await response.WriteAsync(Chunk("after") + "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,\"total_tokens\":14}}\n\n" + Done, ct);
                break;
            case "no-newlines":
                for (var i = 0; i < 48; i++) await response.WriteAsync(new string('y', 64 * 1024), ct);
                break;
            case "endless":
                while (!ct.IsCancellationRequested)
                {
                    await response.WriteAsync(Chunk("more"), ct);
                    await response.Body.FlushAsync(ct);
                    await Task.Delay(20, ct);
                }
                break;
            case "huge-json":
                // 12 MB, over the proxy's 8 MB parse limit, with a usage that would otherwise be read.
                await response.WriteAsync(Reply("""{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}""", new string('z', 12 * 1024 * 1024)), ct);
                break;
            default:
                response.StatusCode = 400;
                break;
        }
    }

    private async Task<(HttpStatusCode Status, long Bytes, UsageEvent Usage, long Charged)> SendAsync(string mode, string body)
    {
        var h = await ProxyAsync();
        var caller = await h.CreateCallerAsync();
        var before = await h.Projection.BalanceMicrosAsync(caller.User.UserId);
        using var request = ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, body);
        request.Headers.Add("x-hostile", mode);
        // The deadline of the whole exchange: a proxy that hangs on an upstream fails the test here.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        using var response = await h.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        long bytes = 0;
        try
        {
            await using var stream = await response.Content.ReadAsStreamAsync(deadline.Token);
            var buffer = new byte[81920];
            int n;
            while ((n = await stream.ReadAsync(buffer, deadline.Token)) > 0) bytes += n;
        }
        catch (Exception e) when (e is IOException or HttpRequestException && !deadline.IsCancellationRequested)
        {
            // A stream the proxy had to cut ends early for the client: that is the designed outcome, not a hang.
        }
        var usage = await h.WaitForUsageAsync(caller.Key.KeyId);
        var after = await Gateway.Testing.Eventually.ReturnsAsync(async () =>
            await h.Projection.BalanceMicrosAsync(caller.User.UserId) is var b && b != before || usage.Cost == 0 ? (object)b : null, "the settlement");
        return (response.StatusCode, bytes, usage, before - (long)after);
    }

    private const string Chat = """{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}""";
    private const string StreamChat = """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}""";

    [Fact]
    public async Task Negative_counts_are_estimated_never_charged_as_zero_or_below()
    {
        var (status, _, usage, charged) = await SendAsync("negative-usage", Chat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(usage.Estimated);
        Assert.Equal(Math.Max(1, Encoding.UTF8.GetByteCount(Chat) / 4), usage.Tokens.Input);
        Assert.Equal((Encoding.UTF8.GetByteCount("hello there general kenobi") + 3) / 4, usage.Tokens.Output);
        Assert.True(usage.Cost > 0);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task Absurd_counts_are_capped_at_what_the_request_could_use()
    {
        var (status, _, usage, charged) = await SendAsync("absurd-usage", Chat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(usage.Estimated);
        Assert.Equal(50, usage.Tokens.Output);   // max_tokens
        Assert.Equal(Math.Max(1, Encoding.UTF8.GetByteCount(Chat) / 4), usage.Tokens.Input);
        Assert.InRange(charged, 1, 10_000);      // at most a cent, not billions of dollars
    }

    [Fact]
    public async Task Counts_that_are_not_integers_are_estimated()
    {
        var (status, _, usage, charged) = await SendAsync("fractional-usage", Chat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Input > 0 && usage.Tokens.Output > 0);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task Several_choices_may_use_max_tokens_each()
    {
        // n = 3 completions of at most 50 tokens: 120 output tokens are plausible and kept as reported.
        var (_, _, usage, _) = await SendAsync("plausible-usage", """{"model":"gpt-4o-mini","n":3,"max_tokens":50,"messages":[{"role":"user","content":"hi"}]}""");
        Assert.False(usage.Estimated);
        Assert.Equal(new TokenCounts(20, 0, 0, 120), usage.Tokens);
        // With one choice the same report is more than the request could use.
        (_, _, usage, _) = await SendAsync("plausible-usage", Chat);
        Assert.True(usage.Estimated);
        Assert.Equal(50, usage.Tokens.Output);
    }

    [Fact]
    public async Task A_stream_with_broken_usage_JSON_is_forwarded_and_estimated()
    {
        var (status, bytes, usage, charged) = await SendAsync("broken-usage-stream", StreamChat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(bytes > 0);
        Assert.True(usage.Estimated);
        Assert.Equal((Encoding.UTF8.GetByteCount("hello world") + 3) / 4, usage.Tokens.Output);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task An_event_over_the_parser_limit_is_forwarded_whole_and_metering_resumes_after_it()
    {
        var (status, bytes, usage, _) = await SendAsync("huge-event", StreamChat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(bytes > 6 * 1024 * 1024, $"the client got {bytes} bytes");
        Assert.True(SseUsageParser.MaxEventBytes < 6 * 1024 * 1024);
        Assert.False(usage.Estimated);
        Assert.Equal(new TokenCounts(11, 0, 0, 3), usage.Tokens);
    }

    [Fact]
    public async Task A_stream_without_newlines_is_forwarded_and_metered_by_estimate()
    {
        var (status, bytes, usage, charged) = await SendAsync("no-newlines", StreamChat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(48 * 64 * 1024, bytes);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Input > 0);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task A_stream_that_never_ends_is_ended_by_the_total_timeout_and_charged()
    {
        await ProxyAsync(totalTimeoutSeconds: 5);
        var (_, bytes, usage, charged) = await SendAsync("endless", StreamChat);
        Assert.True(bytes > 0);
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Output > 0);
        Assert.True(charged > 0);
    }

    [Fact]
    public async Task A_response_far_larger_than_the_parse_limit_is_forwarded_whole_and_estimated()
    {
        var (status, bytes, usage, charged) = await SendAsync("huge-json", Chat);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.True(bytes > 12 * 1024 * 1024, $"the client got {bytes} bytes");
        Assert.True(usage.Estimated);
        Assert.True(usage.Tokens.Output <= 50, "capped at max_tokens");
        Assert.True(charged >= 0);
    }
}
