using System.Text;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>Slow senders (slowloris): the proxy cuts them off with its own limits instead of holding a connection forever.</summary>
public sealed class SlowSenderTests : IAsyncLifetime
{
    // The limits are short here so the tests are quick; each test gives up (and fails) only far beyond them.
    private static readonly TimeSpan GiveUp = TimeSpan.FromSeconds(60);
    private FuzzSetup _run = null!;
    private TestCaller _caller = null!;

    public async Task InitializeAsync()
    {
        _run = await FuzzSetup.StartAsync(64 * 1024, new Dictionary<string, string?>
        {
            ["TokenGate:Proxy:RequestHeadersTimeoutSeconds"] = "2",
            ["TokenGate:Proxy:RequestBodyTimeoutSeconds"] = "3",
        });
        _caller = await _run.Harness.CreateCallerAsync(balance: 1000m);
    }

    public Task DisposeAsync() => _run.DisposeAsync().AsTask();

    private string Head(int contentLength) =>
        $"POST /v1/chat/completions HTTP/1.1\r\nHost: {_run.Harness.ProxyUrl.Authority}\r\nAuthorization: Bearer {_caller.ApiKey}\r\nContent-Type: application/json\r\nContent-Length: {contentLength}\r\n\r\n";

    [Fact]
    public async Task A_head_sent_a_byte_at_a_time_is_cut_off()
    {
        var head = Encoding.ASCII.GetBytes(Head(100));
        // Never finishes the head: after the request line, one header byte every 100 ms, forever.
        var (cutAfter, _) = await RawHttp.TrickleAsync(_run.Harness.ProxyUrl, head[..30], Encoding.ASCII.GetBytes("x-slow: aaaaaaaaaaaaaaaaaaaaaaa"), TimeSpan.FromMilliseconds(100), GiveUp);
        Assert.NotNull(cutAfter);
    }

    [Fact]
    public async Task A_body_trickled_above_the_minimum_data_rate_gets_a_provider_shaped_408()
    {
        // 25 bytes every 50 ms (~500 bytes/s) passes Kestrel's minimum data rate; the proxy's body deadline ends it.
        var (cutAfter, response) = await RawHttp.TrickleAsync(_run.Harness.ProxyUrl, Encoding.ASCII.GetBytes(Head(60_000)),
            Encoding.ASCII.GetBytes("{\"model\":\"gpt-4o-mini\",\"messages\":[],\"pad\":\"" + new string('a', 200)), TimeSpan.FromMilliseconds(2), GiveUp);
        Assert.NotNull(cutAfter);
        Assert.NotNull(response);
        Assert.Equal(408, response!.Status);
        Assert.Null(FuzzChecks.ShapeProblem(ApiDialect.OpenAI, response.Header("Content-Type"), response.Body));
    }

    [Fact]
    public async Task A_body_that_stops_arriving_is_cut_off()
    {
        var body = Encoding.ASCII.GetBytes("{\"model\":\"gpt-4o-mini\",\"messages\":[]}");
        // Half the body, then nothing (the trickle interval is far longer than every limit).
        var (cutAfter, response) = await RawHttp.TrickleAsync(_run.Harness.ProxyUrl, [.. Encoding.ASCII.GetBytes(Head(body.Length)), .. body[..10]], body[10..], TimeSpan.FromSeconds(120), GiveUp);
        Assert.NotNull(cutAfter);
        if (response is { Status: > 0 }) Assert.Equal(408, response.Status);
    }
}
