using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Runtime.CompilerServices;
using Gateway.Core.Enforcement;
using Gateway.Core.Keys;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.Proxy.Auth;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Errors;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Metering;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;
using Gateway.Proxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Endpoints;

/// <summary>The authenticated caller: key version and owner.</summary>
public readonly record struct Caller(KeyProjection Key, UserProjection User);

/// <summary>
/// The hot path of every metered route: authenticate, read the body's model/stream/max tokens, admit
/// (one Redis call), pick an upstream, forward with retries before the first byte, stream the
/// response back while metering it, settle (one Redis call).
/// </summary>
public sealed partial class ProxyRequestHandler
{
    private const int CopyBufferSize = 16 * 1024;
    /// <summary>Upper bound of the output tokens a reservation assumes (far above any model's output limit).</summary>
    internal const long MaxReservedOutputTokens = 100_000_000;
    private static readonly HttpMethod Post = HttpMethod.Post;

    private readonly PolicyCache _policies;
    private readonly UpstreamCatalog _catalog;
    private readonly KeyHasher _hasher;
    private readonly Enforcer _enforcer;
    private readonly HttpMessageInvoker _invoker;
    private readonly PriceTable _prices;
    private readonly ProxyOptions _options;
    private readonly ProxyMetrics _metrics;
    private readonly ClientIpResolver _clientIp;
    private readonly OAuthRefreshRequests _refreshRequests;
    private readonly ILogger _logger;
    private readonly TimeSpan _ttfbTimeout;
    private readonly TimeSpan _bodyTimeout;
    private readonly TimeSpan _totalTimeout;
    private readonly TimeSpan _lease;

    public ProxyRequestHandler(PolicyCache policies, UpstreamCatalog catalog, KeyHasher hasher, Enforcer enforcer, UpstreamInvoker invoker,
        PriceTable prices, IOptions<ProxyOptions> options, ProxyMetrics metrics, ClientIpResolver clientIp, ILogger<ProxyRequestHandler> logger,
        OAuthRefreshRequests refreshRequests)
    {
        _refreshRequests = refreshRequests;
        _policies = policies;
        _catalog = catalog;
        _hasher = hasher;
        _enforcer = enforcer;
        _invoker = invoker.Invoker;
        _prices = prices;
        _options = options.Value;
        _metrics = metrics;
        _clientIp = clientIp;
        _logger = logger;
        _ttfbTimeout = TimeSpan.FromSeconds(_options.UpstreamTimeToFirstByteSeconds);
        _bodyTimeout = TimeSpan.FromSeconds(_options.RequestBodyTimeoutSeconds);
        _totalTimeout = TimeSpan.FromSeconds(_options.UpstreamTotalTimeoutSeconds);
        _lease = _totalTimeout + TimeSpan.FromSeconds(_options.ReservationLeaseMarginSeconds);
    }

    /// <summary>Authenticates the request; on failure writes the error and returns null.</summary>
    public async ValueTask<Caller?> AuthenticateAsync(HttpContext context, ApiDialect dialect, long start)
    {
        var key = ApiKeyExtractor.Extract(context.Request.Headers);
        if (key.IsEmpty)
        {
            await RejectAsync(context, dialect, ProxyError.MissingKey, start).ConfigureAwait(false);
            return null;
        }
        // Only the operator's key format can exist; anything else is refused without hashing or a Redis read.
        if (!ApiKeyFormat.IsWellFormed(key))
        {
            await RejectAsync(context, dialect, ProxyError.InvalidKey, start).ConfigureAwait(false);
            return null;
        }
        var hash = _hasher.Hash(key);
        KeyProjection? projection;
        UserProjection? user = null;
        try
        {
            projection = await _policies.GetKeyAsync(hash, context.RequestAborted).ConfigureAwait(false);
            if (projection is not null) user = await _policies.GetUserAsync(projection.UserId, context.RequestAborted).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
        {
            await RejectAsync(context, dialect, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
            return null;
        }
        var error = Check(projection, user, DateTimeOffset.UtcNow);
        if (error is not null)
        {
            await RejectAsync(context, dialect, error, start).ConfigureAwait(false);
            return null;
        }
        return new Caller(projection!, user!);
    }

    /// <summary>Why a key may not be used now, or null when it may.</summary>
    public static ProxyError? Check(KeyProjection? key, UserProjection? user, DateTimeOffset now)
    {
        if (key is null || user is null) return ProxyError.InvalidKey;
        // A superseded version past its grace period is simply no longer a key.
        if (key.ValidUntil is { } until && until <= now) return ProxyError.InvalidKey;
        if (key.Disabled) return ProxyError.KeyDisabled;
        if (key.ExpiresAt is { } expires && expires <= now) return ProxyError.KeyExpired;
        if (user.Suspended) return ProxyError.UserSuspended;
        return null;
    }

    /// <summary>Handles one request on a metered (or pass-through) route.</summary>
    public Task HandleAsync(HttpContext context, ProxyRoute route)
    {
        // The request delegate needs a Task; wrapping the pooled ValueTask costs a small object instead
        // of this method's whole state machine box on every request.
        var pending = HandleCoreAsync(context, route);
        return pending.IsCompletedSuccessfully ? Task.CompletedTask : pending.AsTask();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask HandleCoreAsync(HttpContext context, ProxyRoute route)
    {
        var start = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;
        var requestId = Guid.CreateVersion7().ToString("N");
        var clientRequestId = context.Request.Headers["x-request-id"];
        // The client's id is echoed only when it is a plain token: a control byte would make the response header invalid.
        context.Response.Headers["x-request-id"] = clientRequestId.Count == 1 && HeaderRules.IsEchoableId(clientRequestId[0]) ? clientRequestId : requestId;
        _metrics.InFlight.Add(1);
        var modelLabel = "";
        byte[]? body = null;
        try
        {
            var caller = await AuthenticateAsync(context, route.Dialect, start).ConfigureAwait(false);
            if (caller is not { } c) return;

            // A header value the upstream client cannot send would fail the attempt and count against the account.
            if (HeaderRules.FindUnforwardable(context.Request.Headers) is { } badHeader)
            {
                await RejectAsync(context, route.Dialect, ProxyError.InvalidHeader, start,
                    string.Concat("The request header '", badHeader, "' has non-ASCII or control characters, which cannot be forwarded. Send header values as printable ASCII.")).ConfigureAwait(false);
                return;
            }
            // Body: JSON only, bounded, read into a pooled buffer that is forwarded (edited or not).
            if (!IsJson(context.Request.ContentType))
            {
                await RejectAsync(context, route.Dialect, ProxyError.WrongContentType, start).ConfigureAwait(false);
                return;
            }
            byte[] buffer; int length; BodyRead outcome;
            try
            {
                (buffer, length, outcome) = await ReadBodyAsync(context.Request, _options.MaxRequestBodyBytes, _bodyTimeout, context.RequestAborted).ConfigureAwait(false);
            }
            catch (BadHttpRequestException ex)
            {
                // Kestrel refused the body's framing (cut short, bad chunk) or its pace (below the minimum data rate).
                await RejectAsync(context, route.Dialect, ex.StatusCode == StatusCodes.Status408RequestTimeout ? ProxyError.RequestTimeout : ProxyError.MalformedBody, start).ConfigureAwait(false);
                return;
            }
            catch (IOException) when (!context.RequestAborted.IsCancellationRequested)
            {
                // Kestrel reports some framing errors this way (a chunk size that overflows is an IOException, not a
                // BadHttpRequestException); a client that went away is not answered.
                await RejectAsync(context, route.Dialect, ProxyError.MalformedBody, start).ConfigureAwait(false);
                return;
            }
            body = buffer;
            if (outcome == BodyRead.TimedOut)
            {
                // A slow sender (slowloris): answer, and close the connection rather than read the rest.
                context.Response.Headers.Connection = "close";
                await RejectAsync(context, route.Dialect, ProxyError.RequestTimeout, start).ConfigureAwait(false);
                return;
            }
            if (outcome == BodyRead.TooLarge)
            {
                await RejectAsync(context, route.Dialect, ProxyError.BodyTooLarge, start,
                    string.Concat("The request body is larger than this gateway accepts (", _options.MaxRequestBodyBytes.ToString(CultureInfo.InvariantCulture), " bytes). Send a smaller request.")).ConfigureAwait(false);
                return;
            }
            var status = RequestBodyReader.Read(body.AsSpan(0, length), out var fields);
            if (status != BodyReadStatus.Ok)
            {
                await RejectAsync(context, route.Dialect, status switch
                {
                    BodyReadStatus.InvalidUtf8 => ProxyError.InvalidUtf8,
                    BodyReadStatus.NotAnObject => ProxyError.NotAnObject,
                    BodyReadStatus.MissingModel => ProxyError.MissingModel,
                    BodyReadStatus.DuplicateModel => ProxyError.DuplicateModel,
                    _ => ProxyError.MalformedJson,
                }, start).ConfigureAwait(false);
                return;
            }
            var model = fields.Model!;
            if (!ModelGlob.Allowed(c.Key.AllowedModels, model) || !ModelGlob.Allowed(c.User.AllowedModels, model))
            {
                await RejectAsync(context, route.Dialect, ProxyError.ModelNotAllowed, start,
                    string.Concat("This API key is not allowed to use the model '", model, "'. GET /v1/models lists the models it may use.")).ConfigureAwait(false);
                return;
            }
            UpstreamSnapshot snapshot;
            try
            {
                snapshot = await _catalog.GetAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
            {
                await RejectAsync(context, route.Dialect, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
                return;
            }
            var targets = snapshot.For(route.Dialect, model);
            if (targets.Length == 0)
            {
                await RejectAsync(context, route.Dialect, ProxyError.ModelNotFound, start,
                    string.Concat("The model '", model, "' is not served by any upstream account of this gateway. GET /v1/models lists the available models.")).ConfigureAwait(false);
                return;
            }
            // From here the model is one the operator configured, so it is a bounded label.
            modelLabel = model;
            await ForwardAsync(context, route, c, body, length, fields, targets, requestId, start, startedAt).ConfigureAwait(false);
        }
        finally
        {
            if (body is not null) ArrayPool<byte>.Shared.Return(body);
            _metrics.InFlight.Add(-1);
            var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
            _metrics.Requests.Add(1, new("route", route.Name), new("model", modelLabel), new("code_class", ProxyMetrics.CodeClass(context.Response.StatusCode)));
            _metrics.Duration.Record(elapsed, new KeyValuePair<string, object?>("route", route.Name));
        }
    }

    // The per-request async steps below return pooled ValueTasks: each would otherwise allocate its
    // state machine box on every request that awaits real I/O (all of them).
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ForwardAsync(HttpContext context, ProxyRoute route, Caller caller, byte[] body, int length, RequestFields fields,
        UpstreamTarget[] targets, string requestId, long start, DateTimeOffset startedAt)
    {
        var model = fields.Model!;
        // Admission: reserve an upper bound of the cost (prompt estimate + max output, priced, discounted).
        var estimatedInput = Math.Max(1, length / 4);
        // An absurd max tokens (up to long.MaxValue) would overflow the cost in micro-dollars and the token windows; no
        // model produces more than MaxReservedOutputTokens, so the reservation stops there (and is still refused by any balance).
        var maxOutput = route == ProxyRoute.Embeddings ? 0 : Math.Min(fields.MaxTokens > 0 ? fields.MaxTokens : _options.DefaultMaxOutputTokens, MaxReservedOutputTokens);
        var (reservePrice, reserveVersion) = ResolvePrice(targets[0], model);
        var reservedMicros = reservePrice is null ? 0
            : Money.ToMicrosCeiling(CostCalculator.Compute(new TokenCounts(estimatedInput, 0, 0, maxOutput), reservePrice, caller.User.DiscountRate, caller.Key.DiscountRate));

        Reservation? reservation = null;
        if (route.Metered)
        {
            AdmissionResult admission;
            try
            {
                admission = await _enforcer.AdmitAsync(new Gateway.Core.Enforcement.AdmissionRequest
                {
                    RequestId = requestId,
                    Key = caller.Key,
                    User = caller.User,
                    ReservedMicros = reservedMicros,
                    EstimatedInputTokens = estimatedInput,
                    MaxOutputTokens = maxOutput,
                    Model = model,
                    Route = route.Name,
                    PriceVersion = reserveVersion,
                    // The reservation must outlive the longest possible exchange, or a live stream is charged as an orphan.
                    Lease = _lease,
                }, context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
            {
                await RejectAsync(context, route.Dialect, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
                return;
            }
            AddRateLimitHeaders(context.Response.Headers, admission);
            if (!admission.Allowed)
            {
                await RejectAdmissionAsync(context, route.Dialect, admission, start).ConfigureAwait(false);
                return;
            }
            reservation = admission.Reservation;
        }

        var exchange = new Exchange(route, caller, requestId, startedAt, start, fields, length);
        try
        {
            await ExchangeAsync(context, exchange, body, length, targets).ConfigureAwait(false);
        }
        finally
        {
            await FinishAsync(context, exchange, reservation).ConfigureAwait(false);
        }
    }

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
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ExchangeAsync(HttpContext context, Exchange x, byte[] body, int length, UpstreamTarget[] targets)
    {
        var route = x.Route;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
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
                var entered = true;
                sendStart = Stopwatch.GetTimestamp();
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
                if (code == 429 || code >= 500 || tokenRejected)
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
                else
                {
                    target.Health.RecordSuccess(isProbe);
                    _metrics.UpstreamRequests.Add(1, new("upstream", target.Account.Name), new("outcome", "ok"));
                }
                x.Target = target;
                x.Reached = true;
                x.Status = code;
                try
                {
                    await CopyResponseAsync(context, x, response, cts, sendStart, headersAt).ConfigureAwait(false);
                }
                finally
                {
                    if (entered) target.Health.Exit();
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
                parser.Dispose();
            }
            else if (accumulated is not null)
            {
                UsageJsonScanner.Scan(accumulated.AsSpan(0, accumulatedLength), ref x.Usage);
                // A provider's error answer passed through: keep its own code (e.g. insufficient_quota).
                if (x.Status >= 400 && x.ErrorCode is null) x.ErrorCode = ProviderErrorCode.Read(accumulated.AsSpan(0, accumulatedLength));
            }
            if (accumulated is not null) ArrayPool<byte>.Shared.Return(accumulated);
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FinishAsync(HttpContext context, Exchange x, Reservation? reservation)
    {
        if (!x.Route.Metered || reservation is null) return;
        try
        {
            // The client has everything; settlement must not delay the end of its response.
            if (!x.Incomplete && x.Status != 499 && !context.RequestAborted.IsCancellationRequested) await context.Response.CompleteAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or OperationCanceledException)
        {
        }
        try
        {
            if (!x.Reached)
            {
                await _enforcer.ReleaseAsync(reservation, CancellationToken.None).ConfigureAwait(false);
                return;
            }
            var usage = BuildUsage(x, _clientIp.Resolve(context));
            x.Target!.Health.CountTokens(usage.Tokens.Total);
            await _enforcer.SettleAsync(new Settlement { Reservation = reservation, Usage = usage }, CancellationToken.None).ConfigureAwait(false);
            RecordUsageMetrics(usage);
        }
        catch (Exception ex) when (ex is RedisConnectionException or RedisServerException or TimeoutException)
        {
            // The reservation stays and is charged by the ledger writer when its lease ends: never free.
            Log.SettlementFailed(_logger, x.RequestId, ex.Message);
        }
    }

    private UsageEvent BuildUsage(Exchange x, string clientIp)
    {
        var target = x.Target!;
        var model = x.Fields.Model!;
        var usage = x.Usage;
        TokenCounts tokens;
        var estimated = false;
        var succeeded = x.Status is >= 200 and < 300 || (x.Status == 499 && usage.OutputTextBytes > 0) || (x.Incomplete && usage.OutputTextBytes > 0);
        var estimatedOutput = (usage.OutputTextBytes + 3) / 4;
        if (usage.Seen)
        {
            tokens = usage.ToTokenCounts(x.Route.Usage);
            // A stream that ended early may have reported only its start (e.g. message_start's output of 1).
            if (x.Incomplete && estimatedOutput > tokens.Output)
            {
                tokens = tokens with { Output = estimatedOutput };
                estimated = true;
            }
            // Missing, invalid or absurd counts are estimated or capped (a broken or hostile upstream).
            tokens = UsageSanity.Bound(usage, tokens, x.RequestBytes, x.Fields.MaxTokens, x.Fields.Choices, estimatedOutput, out var adjusted);
            estimated |= adjusted;
        }
        else if (succeeded)
        {
            tokens = new TokenCounts(Math.Max(1, x.RequestBytes / 4), 0, 0, estimatedOutput);
            estimated = true;
        }
        else tokens = default;

        var (price, version) = ResolvePrice(target, model);
        if (price is null && tokens.Total > 0) Log.NoPrice(_logger, model);
        var cost = price is null ? 0m : CostCalculator.Compute(tokens, price, x.Caller.User.DiscountRate, x.Caller.Key.DiscountRate);
        var now = Stopwatch.GetTimestamp();
        return new UsageEvent
        {
            RequestId = x.RequestId,
            KeyId = x.Caller.Key.KeyId,
            KeyVersion = x.Caller.Key.Version,
            UserId = x.Caller.User.UserId,
            Upstream = target.Account.Name,
            Model = model,
            Route = x.Route.Name,
            Tokens = tokens,
            Cost = cost,
            PriceVersion = version,
            StartedAt = x.StartedAt,
            DurationMs = (int)Stopwatch.GetElapsedTime(x.Start, now).TotalMilliseconds,
            TimeToFirstByteMs = x.FirstByteAt == 0 ? null : (int)Stopwatch.GetElapsedTime(x.Start, x.FirstByteAt).TotalMilliseconds,
            Status = x.Status,
            Estimated = estimated,
            Streamed = x.Streamed,
            ClientIp = clientIp,
            ErrorCode = x.Status is >= 200 and < 400 ? "" : x.ErrorCode ?? UsageErrorCodes.ForStatus(x.Status),
        };
    }

    private void RecordUsageMetrics(UsageEvent usage)
    {
        var model = new KeyValuePair<string, object?>("model", usage.Model);
        if (usage.Tokens.Input > 0) _metrics.Tokens.Add(usage.Tokens.Input, model, new("kind", "input"));
        if (usage.Tokens.CachedInput > 0) _metrics.Tokens.Add(usage.Tokens.CachedInput, model, new("kind", "cached_input"));
        if (usage.Tokens.CacheWrite > 0) _metrics.Tokens.Add(usage.Tokens.CacheWrite, model, new("kind", "cache_write"));
        if (usage.Tokens.Output > 0) _metrics.Tokens.Add(usage.Tokens.Output, model, new("kind", "output"));
        if (usage.Cost > 0) _metrics.Cost.Add((double)usage.Cost, model);
    }

    /// <summary>The account's price override wins; else the price table (requested name, then upstream name).</summary>
    private (ModelPrice? Price, string Version) ResolvePrice(UpstreamTarget target, string model)
    {
        if (target.Model.Price is { } own) return (own, target.Account.PriceVersion ?? "ua:" + target.Account.Name);
        var p = _prices.Find(model) ?? _prices.Find(target.UpstreamModelName);
        return (p, _prices.Version);
    }

    /// <summary>Writes a proxy-generated error with the overhead header and counts the rejection.</summary>
    public Task RejectAsync(HttpContext context, ApiDialect dialect, ProxyError error, long start, string? message = null)
    {
        _metrics.Rejections.Add(1, new KeyValuePair<string, object?>("reason", error.Reason));
        SetOverheadHeader(context.Response, Stopwatch.GetTimestamp() - start);
        return error.WriteAsync(context, dialect, message ?? error.Message);
    }

    private Task RejectAdmissionAsync(HttpContext context, ApiDialect dialect, AdmissionResult admission, long start)
    {
        var (error, message) = Rejections.For(admission.Reason);
        if (admission.RetryAfter is { } retry) context.Response.Headers.RetryAfter = ProxyError.RetryAfterSeconds(retry.TotalSeconds);
        return RejectAsync(context, dialect, error, start, message);
    }

    // A limit is the same on almost every response (one configuration for most callers): its text is reused.
    private static readonly CachedNumberText s_requestLimitText = new();
    private static readonly CachedNumberText s_tokenLimitText = new();

    /// <summary>The decimal text of the last number formatted, reused while the number repeats.</summary>
    private sealed class CachedNumberText
    {
        private sealed record Entry(long Value, string Text);
        private Entry? _last;

        public string Format(long value)
        {
            var last = Volatile.Read(ref _last);
            if (last is not null && last.Value == value) return last.Text;
            var text = value.ToString(CultureInfo.InvariantCulture);
            Volatile.Write(ref _last, new Entry(value, text));
            return text;
        }
    }

    private static void AddRateLimitHeaders(IHeaderDictionary headers, AdmissionResult admission)
    {
        if (admission.Requests is { } r)
        {
            headers["x-ratelimit-limit-requests"] = s_requestLimitText.Format(r.Limit);
            headers["x-ratelimit-remaining-requests"] = r.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-requests"] = FormatReset(r.Reset);
        }
        if (admission.Tokens is { } t)
        {
            headers["x-ratelimit-limit-tokens"] = s_tokenLimitText.Format(t.Limit);
            headers["x-ratelimit-remaining-tokens"] = t.Remaining.ToString(CultureInfo.InvariantCulture);
            headers["x-ratelimit-reset-tokens"] = FormatReset(t.Reset);
        }
    }

    /// <summary>OpenAI's reset format: "20ms", "1.5s", "6m0s".</summary>
    internal static string FormatReset(TimeSpan reset)
    {
        if (reset < TimeSpan.Zero) reset = TimeSpan.Zero;
        // One string each (no intermediate number string): these are on every admitted response.
        if (reset.TotalSeconds < 1) return string.Create(CultureInfo.InvariantCulture, $"{(long)Math.Ceiling(reset.TotalMilliseconds)}ms");
        if (reset.TotalMinutes < 1) return string.Create(CultureInfo.InvariantCulture, $"{Math.Round(reset.TotalSeconds, 3)}s");
        var minutes = (long)reset.TotalMinutes;
        return string.Concat(minutes.ToString(CultureInfo.InvariantCulture), "m", ((long)Math.Ceiling(reset.TotalSeconds - minutes * 60)).ToString(CultureInfo.InvariantCulture), "s");
    }

    /// <summary>Sets x-tokengate-overhead-ms (milliseconds, 3 decimals).</summary>
    public static void SetOverheadHeader(HttpResponse response, long ticks)
    {
        if (response.HasStarted) return;
        response.Headers["x-tokengate-overhead-ms"] = FormatMilliseconds(ticks);
    }

    /// <summary>Stopwatch ticks as milliseconds with at most 3 decimals, trailing zeros dropped ("0.###"), without a custom format string.</summary>
    internal static string FormatMilliseconds(long ticks)
    {
        var micros = (long)Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, MidpointRounding.AwayFromZero);
        if (micros < 0) micros = 0;
        var whole = micros / 1000;
        var fraction = (int)(micros % 1000);
        if (fraction == 0) return whole.ToString(CultureInfo.InvariantCulture);
        var digits = 3;
        while (fraction % 10 == 0) { fraction /= 10; digits--; }
        Span<char> text = stackalloc char[24];
        whole.TryFormat(text, out var n, provider: CultureInfo.InvariantCulture);
        text[n++] = '.';
        fraction.TryFormat(text[n..], out var m, digits == 3 ? "D3" : digits == 2 ? "D2" : "D1", CultureInfo.InvariantCulture);
        return new string(text[..(n + m)]);
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.AsSpan().TrimStart().StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

    /// <summary>Outcome of reading a request body.</summary>
    private enum BodyRead : byte { Ok, TooLarge, TimedOut }

    /// <summary>
    /// Reads the body into a pooled buffer (Content-Length sized when known), stopping past the limit. A body that has
    /// to be waited for gets <paramref name="timeout"/> from the first wait on: a timer then cancels the pending read.
    /// A body that arrived with the head (most of them) never pays for the timer.
    /// </summary>
    private static async ValueTask<(byte[] Buffer, int Length, BodyRead Outcome)> ReadBodyAsync(HttpRequest request, long limit, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var declared = request.ContentLength;
        if (declared > limit) return (ArrayPool<byte>.Shared.Rent(1), 0, BodyRead.TooLarge);
        var buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 ? (int)declared.Value : 16 * 1024);
        var length = 0;
        var stream = request.Body;
        CancellationTokenSource? deadline = null;
        CancellationTokenRegistration expiry = default;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (length >= limit + 1) return (buffer, length, BodyRead.TooLarge);
                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Math.Max(buffer.Length * 2L, 16 * 1024), limit + 1));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
                var read = stream.ReadAsync(buffer.AsMemory(length), cancellationToken);
                if (!read.IsCompleted && deadline is null)
                {
                    deadline = new CancellationTokenSource(timeout);
                    expiry = deadline.Token.UnsafeRegister(static reader => ((System.IO.Pipelines.PipeReader)reader!).CancelPendingRead(), request.BodyReader);
                }
                int n;
                try
                {
                    n = await read.ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadline is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested)
                {
                    return (buffer, length, BodyRead.TimedOut);
                }
                if (n == 0) break;
                length += n;
                if (length > limit) return (buffer, length, BodyRead.TooLarge);
            }
            return (buffer, length, BodyRead.Ok);
        }
        finally
        {
            expiry.Dispose();
            deadline?.Dispose();
        }
    }

    private static void Append(ref byte[]? buffer, ref int length, ReadOnlySpan<byte> data)
    {
        if (buffer is null || buffer.Length - length < data.Length)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(16 * 1024, Math.Max(length + data.Length, (buffer?.Length ?? 0) * 2)));
            if (buffer is not null)
            {
                buffer.AsSpan(0, length).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(buffer);
            }
            buffer = bigger;
        }
        data.CopyTo(buffer.AsSpan(length));
        length += data.Length;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Upstream {Upstream} failed: {Reason}")]
        public static partial void UpstreamFailed(ILogger logger, string upstream, string reason);

        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Upstream {Upstream} is cooling down for {Seconds} s after repeated failures")]
        public static partial void UpstreamCoolingDown(ILogger logger, string upstream, double seconds);

        [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Upstream {Upstream} answered 429: cooling it down for {Seconds} s as its rate-limit headers ask, on every replica")]
        public static partial void UpstreamRateLimited(ILogger logger, string upstream, double seconds);

        [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Upstream {Upstream} response ended early ({Error})")]
        public static partial void UpstreamCut(ILogger logger, string upstream, string error);

        [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Settlement of request {RequestId} failed; its reservation will be charged when its lease ends: {Error}")]
        public static partial void SettlementFailed(ILogger logger, string requestId, string error);

        [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "No price for model {Model} in the price table or the account; usage recorded at zero cost")]
        public static partial void NoPrice(ILogger logger, string model);
    }
}
