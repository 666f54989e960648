using System.Buffers;
using System.Diagnostics;
using System.Net;
using System.Runtime.CompilerServices;
using Gateway.Core.Usage;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Metering;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace Gateway.Proxy.Endpoints;

/// <summary>The exchange with the upstream: attempts with failover before the first byte, cooldowns, and copying the response back while metering it.</summary>
public sealed partial class ProxyRequestHandler
{
    /// <summary>State of one exchange with the upstream, for settlement.</summary>
    private sealed class Exchange(ProxyRoute route, Caller caller, string requestId, DateTimeOffset startedAt, long start, RequestFields fields, int requestBytes)
    {
        public ProxyRoute Route { get; } = route;
        public Caller Caller { get; } = caller;
        public string RequestId { get; } = requestId;
        public DateTimeOffset StartedAt { get; } = startedAt;
        public long Start { get; } = start;
        public RequestFields Fields = fields;
        public int RequestBytes { get; } = requestBytes;
        public UpstreamTarget? Target;
        /// <summary>True once an upstream answered (headers received) — only then is anything charged.</summary>
        public bool Reached;
        public int Status;
        public long FirstByteAt;
        public UsageAccumulator Usage = UsageAccumulator.Create();
        /// <summary>The response did not complete normally (client gone, cut, timeout).</summary>
        public bool Incomplete;
        public bool Streamed;
        /// <summary>Why the request failed, when known more precisely than its status (see <see cref="UsageErrorCodes"/>).</summary>
        public string? ErrorCode;
        /// <summary>A 2xx whose body broke the provider's format (SSE events or a JSON body that do not parse): passed on
        /// as it came, but the account is failing.</summary>
        public bool Malformed;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ExchangeAsync(HttpContext context, Exchange x, byte[] body, int length, UpstreamTarget[] targets)
    {
        var route = x.Route;
        CancellationTokenSource? cts = null;
        ulong tried = 0;
        var attempts = 0;
        ProxyError? failure = null;
        HttpResponseMessage? response = null;
        byte[]? edited = null;
        long sendStart = 0, headersAt = 0;
        try
        {
            while (attempts < _options.MaxAttempts)
            {
                var index = UpstreamSelector.PickFor(targets, x.Caller.User, tried, out var isProbe);
                if (index < 0) break;
                tried |= 1UL << index;
                attempts++;
                var target = targets[index];

                if (edited is not null) { ArrayPool<byte>.Shared.Return(edited); edited = null; }
                var sendBody = body;
                var sendLength = length;
                if (BodyEditor.TryEdit(body.AsSpan(0, length), x.Fields, target.EncodedUpstreamModel, route.ForceIncludeUsage, out edited, out var editedLength))
                {
                    sendBody = edited!;
                    sendLength = editedLength;
                }
                using var request = new HttpRequestMessage(Post, target.UriFor(route, _options.AzureApiVersion))
                {
                    Version = HttpVersion.Version20,
                    VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
                    Content = new ByteArrayContent(sendBody, 0, sendLength),
                };
                HeaderRules.CopyRequestHeaders(context.Request.Headers, request);
                ProviderAdapter.ApplyAccountHeaders(request, target);
                // Correlate with the upstream's logs when the client sent no id of its own.
                if (!context.Request.Headers.ContainsKey("x-request-id")) request.Headers.TryAddWithoutValidation("x-request-id", x.RequestId);
                ProviderAdapter.ApplyCredential(request, target, route, _options.AnthropicVersion);

                target.Health.Enter();
                target.Health.CountRequest();
                sendStart = Stopwatch.GetTimestamp();
                // A fresh deadline per attempt: an attempt that timed out cancelled its own source, and the next account
                // gets its whole time to first byte (one shared source stayed cancelled and failed every later attempt at once).
                cts?.Dispose();
                cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
                cts.CancelAfter(_ttfbTimeout);
                try
                {
                    response = await _invoker.SendAsync(request, cts.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
                {
                    target.Health.Exit();
                    x.Status = 499;
                    x.ErrorCode = UsageErrorCodes.ClientDisconnected;
                    return;
                }
                catch (OperationCanceledException)
                {
                    target.Health.Exit();
                    failure = ProxyError.UpstreamTimeout;
                    OnAttemptFailed(target, isProbe, "timeout");
                    continue;
                }
                catch (HttpRequestException ex)
                {
                    target.Health.Exit();
                    failure = ProxyError.UpstreamConnectFailed;
                    Log.UpstreamFailed(_logger, target.Account.Name, ex.Message);
                    OnAttemptFailed(target, isProbe, "error");
                    continue;
                }
                headersAt = Stopwatch.GetTimestamp();
                var code = (int)response.StatusCode;
                // An OAuth account's token rejected (revoked or expired early): the operator is asked to refresh it
                // now, the account cools down here and on the other replicas, and another account takes the request.
                var tokenRejected = code == 401 && target.Account.OAuth;
                var failed = code == 429 || code >= 500 || tokenRejected;
                if (failed)
                {
                    OnAttemptFailed(target, isProbe, code == 429 ? "429" : code == 401 ? "401" : "5xx");
                    if (code == 429) CoolDownAsAsked(target, response);
                    if (tokenRejected)
                    {
                        target.Health.CoolDownFor(TimeSpan.FromSeconds(_options.CooldownSeconds));
                        _ = _refreshRequests.RequestAsync(target.Account.Name);
                    }
                    // Retry elsewhere only while nothing has reached the client and another account is eligible.
                    if (attempts < _options.MaxAttempts && UpstreamSelector.HasCandidateFor(targets, x.Caller.User, tried))
                    {
                        response.Dispose();
                        response = null;
                        target.Health.Exit();
                        continue;
                    }
                }
                x.Target = target;
                x.Reached = true;
                x.Status = code;
                string? broken = null;
                try
                {
                    await CopyResponseAsync(context, x, response, cts, sendStart, headersAt).ConfigureAwait(false);
                    // The upstream's own failure after its headers (cut, body past the deadline, a body that is not what
                    // the provider's format says), not the client's going away.
                    if (x.Incomplete && x.Status != 499) broken = x.Status == 504 ? "timeout" : "cut";
                    else if (x.Malformed) broken = "malformed";
                }
                finally
                {
                    target.Health.Exit();
                    // Health is judged on the whole answer: an account whose responses break after their headers (a stream
                    // cut mid-way, malformed events) is failing and cools down like one refusing connections; judged on the
                    // headers alone its every broken answer reset the failure count and it was never cooled down.
                    if (!failed)
                    {
                        if (broken is not null) OnAttemptFailed(target, isProbe, broken);
                        else
                        {
                            target.Health.RecordSuccess(isProbe);
                            _metrics.UpstreamRequests.Add(1, new("upstream", target.Account.Name), new("outcome", "ok"));
                        }
                    }
                }
                return;
            }

            var error = failure ?? ProxyError.NoUpstream;
            x.Status = error.Status;
            await RejectAsync(context, route.Dialect, error, x.Start).ConfigureAwait(false);
        }
        finally
        {
            response?.Dispose();
            cts?.Dispose();
            if (edited is not null) ArrayPool<byte>.Shared.Return(edited);
        }
    }

    private void OnAttemptFailed(UpstreamTarget target, bool isProbe, string outcome)
    {
        _metrics.UpstreamRequests.Add(1, new("upstream", target.Account.Name), new("outcome", outcome));
        if (target.Health.RecordFailure(isProbe, _options.CooldownAfterFailures, _options.CooldownSeconds))
            Log.UpstreamCoolingDown(_logger, target.Account.Name, _options.CooldownSeconds);
    }

    /// <summary>An upstream 429 that says when to come back (Retry-After, rate-limit reset headers) cools the account
    /// down until then, capped at MaxRetryAfterSeconds, on this replica at once and on the others from their next sync.</summary>
    private void CoolDownAsAsked(UpstreamTarget target, HttpResponseMessage response)
    {
        if (RateLimitReset.Delay(response.Headers, DateTimeOffset.UtcNow) is not { } delay) return;
        var max = TimeSpan.FromSeconds(_options.MaxRetryAfterSeconds);
        if (delay > max) delay = max;
        if (target.Health.CoolDownFor(delay)) Log.UpstreamRateLimited(_logger, target.Account.Name, Math.Ceiling(delay.TotalSeconds));
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CopyResponseAsync(HttpContext context, Exchange x, HttpResponseMessage response, CancellationTokenSource cts, long sendStart, long headersAt)
    {
        var route = x.Route;
        var http = context.Response;
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        var isSse = string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase);
        var ok = x.Status < 400;
        // We forced include_usage: the usage-only chunk is ours, not the client's.
        var dropUsageChunk = isSse && ok && route.ForceIncludeUsage && BodyEditor.NeedsIncludeUsage(x.Fields);
        var correctStart = isSse && ok && route.ClaudeCode;
        x.Streamed = isSse;

        http.StatusCode = x.Status;
        HeaderRules.CopyResponseHeaders(response.Headers, response.Content.Headers, http.Headers, dropContentLength: dropUsageChunk || correctStart);
        var overheadTicks = (sendStart - x.Start) + (Stopwatch.GetTimestamp() - headersAt);
        SetOverheadHeader(http, overheadTicks);
        _metrics.Overhead.Record(overheadTicks / (double)Stopwatch.Frequency);
        var remaining = _totalTimeout - Stopwatch.GetElapsedTime(x.Start);
        cts.CancelAfter(remaining > TimeSpan.Zero ? remaining : TimeSpan.FromMilliseconds(1));

        var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        byte[]? accumulated = null;
        var accumulatedLength = 0;
        var overflow = false;
        SseUsageParser? parser = isSse ? new SseUsageParser(dropUsageChunk, correctStart) : null;
        try
        {
            if (isSse) context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            var upstream = await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false);
            var writer = http.BodyWriter;
            while (true)
            {
                var n = await upstream.ReadAsync(buffer, cts.Token).ConfigureAwait(false);
                if (n == 0) break;
                if (x.FirstByteAt == 0)
                {
                    x.FirstByteAt = Stopwatch.GetTimestamp();
                    _metrics.TimeToFirstToken.Record(Stopwatch.GetElapsedTime(x.Start).TotalSeconds, new KeyValuePair<string, object?>("route", route.Name));
                }
                var chunk = buffer.AsMemory(0, n);
                if (parser is not null)
                {
                    if (parser.EventMode)
                    {
                        parser.Feed(chunk.Span, writer);
                        await writer.FlushAsync(cts.Token).ConfigureAwait(false);
                    }
                    else
                    {
                        await writer.WriteAsync(chunk, cts.Token).ConfigureAwait(false);
                        parser.Feed(chunk.Span, null);
                    }
                }
                else
                {
                    await writer.WriteAsync(chunk, cts.Token).ConfigureAwait(false);
                    if (!overflow && accumulatedLength + n <= _options.MaxResponseParseBytes) Append(ref accumulated, ref accumulatedLength, chunk.Span);
                    else overflow = true;
                }
            }
            if (parser is not null)
            {
                parser.Complete(parser.EventMode ? writer : null);
                if (parser.EventMode) await writer.FlushAsync(cts.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException)
        {
            x.Incomplete = true;
            if (context.RequestAborted.IsCancellationRequested)
            {
                x.Status = 499;
                x.ErrorCode = UsageErrorCodes.ClientDisconnected;
            }
            else
            {
                x.Status = ex is OperationCanceledException ? 504 : 502;
                x.ErrorCode = x.Status == 504 ? UsageErrorCodes.UpstreamTimeout : UsageErrorCodes.UpstreamError;
                Log.UpstreamCut(_logger, x.Target!.Account.Name, ex.GetType().Name);
                if (!http.HasStarted)
                {
                    // Nothing reached the client yet (e.g. the cut came before the first whole event):
                    // a clean provider-shaped error beats a reset connection.
                    http.Headers.Clear();
                    var error = x.Status == 504 ? ProxyError.UpstreamTimeout : ProxyError.UpstreamConnectFailed;
                    await error.WriteAsync(context, x.Route.Dialect).ConfigureAwait(false);
                }
                else
                {
                    // The status line is gone: end the connection abruptly rather than let a truncated
                    // body look complete.
                    context.Abort();
                }
            }
        }
        finally
        {
            if (parser is not null)
            {
                x.Usage = parser.Usage;
                x.Malformed = ok && parser.InvalidEventCount > 0;
                parser.Dispose();
            }
            else if (accumulated is not null)
            {
                var scan = UsageJsonScanner.Scan(accumulated.AsSpan(0, accumulatedLength), ref x.Usage);
                x.Malformed = ok && scan.Invalid && !overflow && !x.Incomplete && IsJson(mediaType);
                // A provider's error answer passed through: keep its own code (e.g. insufficient_quota).
                if (x.Status >= 400 && x.ErrorCode is null) x.ErrorCode = ProviderErrorCode.Read(accumulated.AsSpan(0, accumulatedLength));
            }
            if (accumulated is not null) ArrayPool<byte>.Shared.Return(accumulated);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
