using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using Gateway.Core.Keys;
using Gateway.Proxy.Tests.Infrastructure;

namespace Gateway.Proxy.Tests.Fuzz;

/// <summary>What a run saw.</summary>
public sealed class FuzzReport
{
    public int Cases;
    public int Skipped;
    public int ReachedUpstream;
    public ConcurrentDictionary<string, int> ByClass { get; } = new();
    public ConcurrentDictionary<string, int> ByRoute { get; } = new();
    public ConcurrentDictionary<int, int> ByStatus { get; } = new();
    public ConcurrentQueue<string> Findings { get; } = new();
    public TimeSpan Elapsed;
}

/// <summary>
/// Sends generated cases to a proxy (HttpClient for what it can express, a raw socket for the rest), a few at a time,
/// and checks each answer and what reached the upstream. A finding names the seed and the case index.
/// </summary>
public sealed class FuzzRunner(ProxyHarness harness, UpstreamWitness witness, TestCaller caller, TestCaller disabled, int bodyLimit) : IDisposable
{
    /// <summary>Per-case deadline: far above any legitimate answer on a loaded machine, far below "hangs".</summary>
    public static readonly TimeSpan CaseDeadline = TimeSpan.FromSeconds(45);

    private readonly HttpClient _http = new(new SocketsHttpHandler
    {
        AllowAutoRedirect = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(10),
    }) { Timeout = Timeout.InfiniteTimeSpan };

    private readonly string _authority = harness.ProxyUrl.Authority;

    public void Dispose() => _http.Dispose();

    public async Task<FuzzReport> RunAsync(int seed, int first, int count, int parallelism, FuzzReport? report = null)
    {
        report ??= new FuzzReport();
        var watch = Stopwatch.StartNew();
        var next = first - 1;
        var end = first + count;
        async Task Worker()
        {
            while (true)
            {
                var i = Interlocked.Increment(ref next);
                if (i >= end) return;
                var c = FuzzGenerator.Generate(seed, i, bodyLimit);
                if (c.Skip is not null) { Interlocked.Increment(ref report.Skipped); continue; }
                try
                {
                    await RunOneAsync(seed, c, report);
                }
                catch (Exception ex)
                {
                    report.Findings.Enqueue($"seed {seed} case {c}: the client failed: {ex.GetType().Name}: {ex.Message}");
                }
                Interlocked.Increment(ref report.Cases);
                report.ByClass.AddOrUpdate(c.Class.ToString(), 1, (_, n) => n + 1);
                report.ByRoute.AddOrUpdate(c.Route.Path.Length == 0 ? "(unknown path)" : c.Route.Path, 1, (_, n) => n + 1);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, parallelism).Select(_ => Task.Run(Worker)));
        CheckUpstreamRequests(seed, report);
        report.Elapsed += watch.Elapsed;
        return report;
    }

    private string KeyFor(FuzzCase c) => c.Key switch
    {
        KeyMode.Valid or KeyMode.WrongThenValid => caller.ApiKey,
        KeyMode.Disabled => disabled.ApiKey,
        KeyMode.Unknown => ApiKeyFormat.Generate(),
        KeyMode.Malformed => "tg-" + new string('x', c.Index % 60),
        _ => "",
    };

    private async Task RunOneAsync(int seed, FuzzCase c, FuzzReport report)
    {
        var id = c.Id(seed);
        var key = KeyFor(c);
        int status;
        string? contentType;
        byte[] body;
        bool fromUpstream;
        if (c.RawBuilder is not null)
        {
            var raw = await RawHttp.SendAsync(harness.ProxyUrl, c.RawBuilder(new RawContext(key, _authority, id)), CaseDeadline, c.HalfClose);
            if (raw.TimedOut)
            {
                report.Findings.Enqueue($"seed {seed} case {c}: no answer within {CaseDeadline.TotalSeconds} s (hang)");
                return;
            }
            status = raw.Status;
            contentType = raw.Header("Content-Type");
            body = raw.Body;
            fromUpstream = raw.Header(UpstreamWitness.MarkerHeader) is not null;
        }
        else
        {
            using var request = BuildRequest(c, key, id);
            using var cts = new CancellationTokenSource(CaseDeadline);
            try
            {
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cts.Token);
                status = (int)response.StatusCode;
                contentType = response.Content.Headers.ContentType?.MediaType;
                body = await response.Content.ReadAsByteArrayAsync(cts.Token);
                fromUpstream = response.Headers.Contains(UpstreamWitness.MarkerHeader);
            }
            catch (OperationCanceledException)
            {
                report.Findings.Enqueue($"seed {seed} case {c}: no answer within {CaseDeadline.TotalSeconds} s (hang)");
                return;
            }
            catch (HttpRequestException ex) when (c.Class == FuzzClass.OversizedBody)
            {
                // The proxy answered 413 and closed while the body was still being sent: HttpClient reports the cut.
                _ = ex;
                status = 413;
                contentType = null;
                body = [];
                fromUpstream = false;
            }
        }
        report.ByStatus.AddOrUpdate(status, 1, (_, n) => n + 1);
        if (fromUpstream) Interlocked.Increment(ref report.ReachedUpstream);
        foreach (var problem in FuzzChecks.Check(c, status, contentType, body, fromUpstream, witness.Reached(id)))
            report.Findings.Enqueue($"seed {seed} case {c}: {problem} (status {status}, body {FuzzChecks.Preview(body)})");
    }

    private HttpRequestMessage BuildRequest(FuzzCase c, string key, string id)
    {
        var request = new HttpRequestMessage(new HttpMethod(c.Method), new Uri(harness.ProxyUrl.GetLeftPart(UriPartial.Authority) + c.Path));
        if (c.Body is not null)
        {
            request.Content = c.Chunked ? new StreamContent(new MemoryStream(c.Body)) : new ByteArrayContent(c.Body);
            if (c.ContentType is not null) request.Content.Headers.TryAddWithoutValidation("Content-Type", c.ContentType);
        }
        if (c.Chunked) request.Headers.TransferEncodingChunked = true;
        request.Headers.TryAddWithoutValidation(UpstreamWitness.CaseHeader, id);
        if (c.Key == KeyMode.WrongThenValid)
        {
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + ApiKeyFormat.Generate());
            request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + key);
        }
        else if (c.Key != KeyMode.Missing)
        {
            var (name, value) = FuzzGenerator.KeyHeaderFor(c.KeyHeader, key);
            request.Headers.TryAddWithoutValidation(name, value);
        }
        foreach (var (name, value) in c.Headers)
        {
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase)) request.Headers.Host = value;
            else if (!request.Headers.TryAddWithoutValidation(name, value)) request.Content?.Headers.TryAddWithoutValidation(name, value);
        }
        return request;
    }

    /// <summary>Every request the upstream saw: only the account's credential, no canary, no hop-by-hop header, honest framing.</summary>
    private void CheckUpstreamRequests(int seed, FuzzReport report)
    {
        foreach (var w in witness.Drain())
            foreach (var problem in FuzzChecks.CheckUpstream(w, caller.ApiKey, harness.MockUrl.Authority, ProxyHarness.MockCredential))
                report.Findings.Enqueue($"seed {seed} upstream request of case {w.CaseId ?? "?"} to {w.Path}: {problem}");
    }
}
