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
    private readonly LeaseBook? _leases;

    public ProxyRequestHandler(PolicyCache policies, UpstreamCatalog catalog, KeyHasher hasher, Enforcer enforcer, UpstreamInvoker invoker,
        PriceTable prices, IOptions<ProxyOptions> options, ProxyMetrics metrics, ClientIpResolver clientIp, ILogger<ProxyRequestHandler> logger,
        OAuthRefreshRequests refreshRequests, LeaseBook? leases = null)
    {
        _leases = leases;
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
        catch (ProjectionMissingException)
        {
            await RejectAsync(context, dialect, ProxyError.ProjectionRebuilding, start).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex) when (ex is RedisConnectionException or TimeoutException or RedisServerException { IsTransient: true })
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
            catch (ProjectionMissingException)
            {
                await RejectAsync(context, route.Dialect, ProxyError.ProjectionRebuilding, start).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException or RedisServerException { IsTransient: true })
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
        LeaseTicket? ticket = null;
        if (route.Metered)
        {
            var request = new Gateway.Core.Enforcement.AdmissionRequest
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
            };
            AdmissionResult? admission = null;
            try
            {
                // A quota lease admits locally (null: this pair is near a limit or has a concurrency limit: exact scripts).
                if (_leases is not null) ticket = await _leases.TryAdmitAsync(request, context.RequestAborted).ConfigureAwait(false);
                if (ticket is null) admission = await _enforcer.AdmitAsync(request, context.RequestAborted).ConfigureAwait(false);
            }
            catch (ProjectionMissingException)
            {
                await RejectAsync(context, route.Dialect, ProxyError.ProjectionRebuilding, start).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException or RedisServerException { IsTransient: true })
            {
                await RejectAsync(context, route.Dialect, ProxyError.RedisUnavailable, start).ConfigureAwait(false);
                return;
            }
            if (ticket is not null)
            {
                AddRateLimitHeaders(context.Response.Headers, ticket.Requests, ticket.Tokens);
            }
            else if (admission is not null)
            {
                AddRateLimitHeaders(context.Response.Headers, admission.Requests, admission.Tokens);
                if (!admission.Allowed)
                {
                    await RejectAdmissionAsync(context, route.Dialect, admission, start).ConfigureAwait(false);
                    return;
                }
                reservation = admission.Reservation;
            }
        }

        var exchange = new Exchange(route, caller, requestId, startedAt, start, fields, length);
        try
        {
            await ExchangeAsync(context, exchange, body, length, targets).ConfigureAwait(false);
        }
        finally
        {
            await FinishAsync(context, exchange, reservation, ticket).ConfigureAwait(false);
        }
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
