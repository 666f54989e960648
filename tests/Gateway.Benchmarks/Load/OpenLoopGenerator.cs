using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;

namespace Gateway.Benchmarks.Load;

/// <summary>
/// Sends POST requests on a fixed schedule (request i is due at start + i/rate), whether or not earlier
/// ones have finished, and measures each latency from its scheduled send time, so a stalled server
/// is charged for the requests it kept waiting (no coordinated omission, the method of wrk2).
/// </summary>
public sealed partial class OpenLoopGenerator : IDisposable
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private readonly HttpClient _client;
    private readonly Uri _url;
    private readonly byte[] _body;
    private readonly KeyValuePair<string, string>[] _headers;

    public OpenLoopGenerator(Uri url, byte[] body, IEnumerable<KeyValuePair<string, string>> headers, int maxConnections)
    {
        _url = url;
        _body = body;
        _headers = [.. headers];
        _client = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            MaxConnectionsPerServer = maxConnections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            ConnectTimeout = TimeSpan.FromSeconds(5),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
            DefaultRequestVersion = HttpVersion.Version11,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
    }

    /// <summary>Runs <paramref name="duration"/> at <paramref name="rate"/> requests/s and returns every latency.</summary>
    public async Task<LoadResult> RunAsync(double rate, TimeSpan duration, TimeSpan requestTimeout)
    {
        var count = Math.Max(1, (int)Math.Round(rate * duration.TotalSeconds));
        var run = new Run(count, requestTimeout);
        var ticksPerRequest = Stopwatch.Frequency / rate;
        var scheduler = new Thread(() =>
        {
            var start = Stopwatch.GetTimestamp();
            run.Start = start;
            for (var i = 0; i < count; i++)
            {
                var due = start + (long)(i * ticksPerRequest);
                WaitUntil(due);
                // Started inline: the synchronous part (pool checkout, header write) is short, and a
                // thread-pool hop would add its own queueing delay to every measurement.
                _ = SendAsync(run, i, due);
            }
            run.SchedulingDone();
        })
        { IsBackground = true, Name = "open-loop scheduler", Priority = ThreadPriority.AboveNormal };
        scheduler.Start();
        // Bounded: every request has its own timeout, plus a margin for the last ones.
        await run.Completed.WaitAsync(duration + requestTimeout + TimeSpan.FromSeconds(5));
        return run.ToResult();
    }

    private async Task SendAsync(Run run, int index, long scheduled)
    {
        var sent = Stopwatch.GetTimestamp();
        var ok = false;
        byte[]? buffer = null;
        try
        {
            using var cts = new CancellationTokenSource(run.RequestTimeout);
            using var request = new HttpRequestMessage(HttpMethod.Post, _url) { Content = new ByteArrayContent(_body) };
            request.Content.Headers.ContentType = Json;
            foreach (var (name, value) in _headers) request.Headers.TryAddWithoutValidation(name, value);
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            // Read to the end: for a stream the latency is the whole stream, as wrk measures it.
            await using var body = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
            while (await body.ReadAsync(buffer, cts.Token).ConfigureAwait(false) > 0)
            {
            }
            ok = response.StatusCode == HttpStatusCode.OK;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            ok = false;
        }
        finally
        {
            if (buffer is not null) ArrayPool<byte>.Shared.Return(buffer);
        }
        run.Record(index, scheduled, sent, Stopwatch.GetTimestamp(), ok);
    }

    /// <summary>Sleeps most of the wait with usleep (microseconds) and spins only the last ~100 µs.</summary>
    private static void WaitUntil(long due)
    {
        while (true)
        {
            var remaining = due - Stopwatch.GetTimestamp();
            if (remaining <= 0) return;
            var micros = remaining * 1_000_000 / Stopwatch.Frequency;
            if (micros > 150)
            {
                if (OperatingSystem.IsLinux()) _ = USleep((uint)(micros - 100));
                else Thread.Sleep(TimeSpan.FromTicks((micros - 100) * 10));
            }
            else
            {
                Thread.SpinWait(20);
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "usleep")]
    private static partial int USleep(uint microseconds);

    public void Dispose() => _client.Dispose();

    private sealed class Run(int count, TimeSpan requestTimeout)
    {
        private readonly long[] _latency = new long[count];
        private readonly long[] _lag = new long[count];
        private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly int _count = count;
        private int _outstanding = count;
        private int _errors;
        private long _lastEnd;

        public TimeSpan RequestTimeout { get; } = requestTimeout;
        public long Start { get; set; }
        public Task Completed => _completed.Task;

        public void Record(int index, long scheduled, long sent, long end, bool ok)
        {
            _latency[index] = end - scheduled;
            _lag[index] = sent - scheduled;
            if (!ok) Interlocked.Increment(ref _errors);
            long last;
            do { last = Volatile.Read(ref _lastEnd); } while (end > last && Interlocked.CompareExchange(ref _lastEnd, end, last) != last);
            if (Interlocked.Decrement(ref _outstanding) == 0) _completed.TrySetResult();
        }

        public void SchedulingDone()
        {
            if (Volatile.Read(ref _outstanding) == 0) _completed.TrySetResult();
        }

        public LoadResult ToResult()
        {
            var done = _count - Volatile.Read(ref _outstanding);
            var elapsed = (double)(Volatile.Read(ref _lastEnd) - Start) / Stopwatch.Frequency;
            // Requests still outstanding at the deadline count as errors with the longest latency seen.
            return new LoadResult(
                Requests: _count,
                Errors: Volatile.Read(ref _errors) + (_count - done),
                RequestsPerSecond: elapsed > 0 ? done / elapsed : 0,
                Latency: Percentiles.FromTicks(_latency),
                SendLag: Percentiles.FromTicks(_lag));
        }
    }
}
