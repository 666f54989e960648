using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Core.Enforcement;

/// <summary>
/// Admission, settlement and reservation expiry against Redis, each one atomic Lua call. Integer
/// micro-dollars in Redis; decimals only here. Thread-safe; one instance per process.
/// </summary>
/// <remarks>
/// Money flow: admission moves the reservation out of the balance and into the period budget and the
/// key's lifetime spend; settlement replaces it with the actual cost; expiry (a pod died) keeps the
/// reservation as the charge; release (nothing reached an upstream) returns all of it and writes no usage
/// event, so a rejected request is never charged (its request still counts against requests-per-minute/day).
/// Whichever of settle, release and expire runs first wins; the others find the reservation gone and do nothing.
/// </remarks>
public sealed partial class Enforcer
{
    private const long MinuteMs = 60_000;
    private const long DayMs = 86_400_000;
    // A budget period key outlives its period by a week (see the Admit script).
    private const long BudgetKeyGraceMs = 7 * DayMs;
    // Finish's ARGV before the usage event's values.
    private const int FinishFixedArgs = 13;
    private readonly IRedisClient _redis;
    private readonly ProjectionKeys _keys;
    private readonly TimeProvider _time;
    private readonly EnforcerOptions _options;
    private readonly ILogger _logger;
    private readonly UsageOutbox? _outbox;
    private readonly ConcurrentDictionary<(string Period, string Zone), BudgetPeriod> _periods = new();
    private readonly KeyNameCache _names;

    /// <param name="outbox">Where written usage events are held until the ledger writer has them, so a Redis that loses its
    /// data loses no usage (<see cref="UsageOutbox"/>); null only in tests of the scripts themselves.</param>
    public Enforcer(IRedisClient redis, ProjectionKeys keys, TimeProvider? time = null, EnforcerOptions? options = null, ILogger<Enforcer>? logger = null,
        UsageOutbox? outbox = null)
    {
        _outbox = outbox;
        _redis = redis;
        _keys = keys;
        _time = time ?? TimeProvider.System;
        _options = options ?? new EnforcerOptions();
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _names = new KeyNameCache(keys);
    }

    /// <summary>Checks every limit and, only if all pass, counts the request and holds its reservation.
    /// <paramref name="cancellationToken"/> is observed only before the script is sent, so an admitted request's
    /// reservation always reaches the caller (who must settle or release it).</summary>
    /// <exception cref="InvalidOperationException">A reservation with this request id already exists.</exception>
    public async Task<AdmissionResult> AdmitAsync(AdmissionRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentOutOfRangeException.ThrowIfNegative(request.ReservedMicros, nameof(request));
        ArgumentOutOfRangeException.ThrowIfNegative(request.EstimatedInputTokens, nameof(request));
        ArgumentOutOfRangeException.ThrowIfNegative(request.MaxOutputTokens, nameof(request));
        if (request.Lease is { } requested && requested <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(request), "The reservation lease must be positive.");
        var now = _time.GetUtcNow();
        var nowMs = now.ToUnixTimeMilliseconds();
        var lease = request.Lease ?? _options.DefaultLease;
        var leaseExpiresMs = nowMs + (long)lease.TotalMilliseconds;
        var keyId = request.Key.KeyId;
        var userId = request.User.UserId;
        var kl = request.Key.Limits;
        var ul = request.User.Limits;

        var keyNames = _names.ForKey(userId, keyId);
        var userNames = _names.ForUser(userId);
        var budget = request.User.Budget;
        string budgetKey;
        long budgetMicros = -1, periodEndMs = 0;
        if (budget is null)
        {
            budgetKey = userNames.BudgetNone;
        }
        else
        {
            budgetMicros = Money.ToMicrosFloor(budget.Amount);
            var period = CurrentPeriod(budget.Period, budget.Timezone, now);
            if (period is { } p)
            {
                budgetKey = userNames.BudgetKey(p);
                periodEndMs = p.End.ToUnixTimeMilliseconds();
            }
            else
            {
                budgetKey = userNames.BudgetNone;
            }
        }
        var reservationKey = userNames.ReservationStem + request.RequestId;

        var keys = RedisArgBuffer.Rent();
        var args = RedisArgBuffer.Rent();
        var numbers = ArrayPool<byte>.Shared.Rent(EnforcementScripts.AdmitNumbers * sizeof(long));
        RespValue reply;
        try
        {
            keys.Add(keyNames.RateCounters); keys.Add(userNames.RateCounters);
            keys.Add(keyNames.Inflight); keys.Add(userNames.Inflight);
            keys.Add(keyNames.Lifetime); keys.Add(userNames.Balance); keys.Add(budgetKey);
            keys.Add(userNames.Reservations); keys.Add(reservationKey);

            args.Add(nowMs); args.Add(request.RequestId); args.Add(keyId); args.Add(request.Key.Version); args.Add(userId);
            args.Add(leaseExpiresMs); args.Add(request.ReservedMicros); args.Add(request.EstimatedInputTokens); args.Add(request.MaxOutputTokens);
            args.Add(request.Model); args.Add(request.Route); args.Add(request.Upstream); args.Add(request.PriceVersion);
            // Values the script would otherwise format or parse per call (see EnforcementScripts).
            args.Add(nowMs / MinuteMs); args.Add(nowMs / DayMs);
            args.Add(periodEndMs > 0 ? periodEndMs - nowMs + BudgetKeyGraceMs : 0);
            var n = numbers.AsSpan();
            Pack(ref n, nowMs); Pack(ref n, leaseExpiresMs); Pack(ref n, request.ReservedMicros); Pack(ref n, request.EstimatedTokens);
            Pack(ref n, Limit(kl?.RequestsPerMinute)); Pack(ref n, Limit(kl?.RequestsPerDay)); Pack(ref n, Limit(kl?.TokensPerMinute));
            Pack(ref n, Limit(kl?.TokensPerDay)); Pack(ref n, Limit(kl?.MaxConcurrent));
            Pack(ref n, Limit(ul?.RequestsPerMinute)); Pack(ref n, Limit(ul?.RequestsPerDay)); Pack(ref n, Limit(ul?.TokensPerMinute));
            Pack(ref n, Limit(ul?.TokensPerDay)); Pack(ref n, Limit(ul?.MaxConcurrent));
            Pack(ref n, Limit(kl?.TokenLimit)); Pack(ref n, kl?.SpendLimit is { } spend ? Money.ToMicrosFloor(spend) : -1L);
            Pack(ref n, budgetMicros); Pack(ref n, periodEndMs); Pack(ref n, (long)_options.ConcurrencyRetryAfter.TotalMilliseconds);
            args.Add(new ReadOnlyMemory<byte>(numbers, 0, EnforcementScripts.AdmitNumbers * sizeof(long)));

            // The token is honoured only before the script is sent: a cancelled wait for a script Redis still runs
            // would leave a reservation nobody knows about, charged later as an orphan.
            cancellationToken.ThrowIfCancellationRequested();
            reply = await _redis.EvalAsync(EnforcementScripts.Admit, keys, args, CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            // Only after the call completed: the client re-sends the arguments when Redis lost the script.
            RedisArgBuffer.Return(keys);
            RedisArgBuffer.Return(args);
            ArrayPool<byte>.Shared.Return(numbers);
        }
        var r = reply.Items;
        var allowed = r[0].AsInt64();
        if (allowed == -1)
            throw new InvalidOperationException("A reservation for this request id already exists; request ids must be unique.");
        if (allowed == -2) throw new ProjectionMissingException();

        var reason = (RejectionReason)r[1].AsInt64();
        var retryMs = r[2].AsInt64();
        var (requests, tokens) = RateLimitHeaders.For(request, WindowCounts.Read(r, 3), nowMs, reason == RejectionReason.None);
        return new AdmissionResult
        {
            Reason = reason,
            RetryAfter = reason == RejectionReason.None || retryMs < 0 ? null : TimeSpan.FromMilliseconds(retryMs),
            Requests = requests,
            Tokens = tokens,
            Reservation = reason != RejectionReason.None ? null : new Reservation
            {
                RequestId = request.RequestId,
                KeyId = keyId,
                KeyVersion = request.Key.Version,
                UserId = userId,
                ReservedMicros = request.ReservedMicros,
                EstimatedTokens = request.EstimatedTokens,
                BudgetKey = budgetKey,
                StartedAt = DateTimeOffset.FromUnixTimeMilliseconds(nowMs),
                LeaseExpiresAt = DateTimeOffset.FromUnixTimeMilliseconds(leaseExpiresMs),
                Admitted = new AdmissionStamp(reservationKey, request.RequestId, budgetKey, request.ReservedMicros, request.EstimatedTokens, nowMs),
            },
        };
    }

    /// <summary>
    /// Replaces the reservation with the actual cost and tokens, frees the concurrency slots and appends the
    /// usage event to the usage stream, atomically. Settling an ended reservation changes nothing.
    /// </summary>
    public async Task<SettleOutcome> SettleAsync(Settlement settlement, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settlement);
        var reservation = settlement.Reservation;
        if (!string.Equals(settlement.Usage.RequestId, reservation.RequestId, StringComparison.Ordinal))
            throw new ArgumentException("The usage event's request id differs from the reservation's.", nameof(settlement));
        var actual = settlement.ActualCostMicros ?? Money.ToMicrosCeiling(settlement.Usage.Cost);
        ArgumentOutOfRangeException.ThrowIfNegative(actual, nameof(settlement));
        var keys = RedisArgBuffer.Rent();
        var args = RedisArgBuffer.Rent();
        RespValue reply;
        try
        {
            var userNames = _names.ForUser(reservation.UserId);
            AddFinishKeys(keys, ReservationKeyOf(reservation, userNames), reservation.KeyId, userNames, reservation.BudgetKey);
            AddFinishArgs(args, reservation, "settle", actual, settlement.Usage.Tokens.Total);
            UsageStreamFields.AddValuesTo(args, settlement.Usage);
            reply = await _redis.EvalAsync(EnforcementScripts.Finish, keys, args, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            RedisArgBuffer.Return(keys);
            RedisArgBuffer.Return(args);
        }
        if (reply.Type == RespType.BulkString)
        {
            _outbox?.Written(reply.AsString()!, settlement.Usage, actual, reservation.BudgetKey);
            return SettleOutcome.Settled;
        }
        // Gone without this process ending it: Redis lost it with its data (or the sweeper charged it as an orphan
        // first). The outbox charges the request again once the user's balance is rebuilt; a duplicate is refunded.
        _outbox?.Lost(settlement.Usage, actual, reservation.BudgetKey);
        return SettleOutcome.AlreadySettled;
    }

    /// <summary>Frees the slots and returns the whole reservation, writing no usage event: for requests that never
    /// reached an upstream. Their request still counts against the request windows.</summary>
    public async Task<SettleOutcome> ReleaseAsync(Reservation reservation, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        var userNames = _names.ForUser(reservation.UserId);
        return await ReleaseAsync(reservation, reservation.RequestId, ReservationKeyOf(reservation, userNames), reservation.KeyId, userNames, reservation.BudgetKey, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Like <see cref="ReleaseAsync(Reservation, CancellationToken)"/> when only the user and request id are at hand
    /// (one extra round trip to read the reservation).</summary>
    public async Task<SettleOutcome> ReleaseAsync(string userId, string requestId, CancellationToken cancellationToken = default)
    {
        var reservationKey = _names.ForUser(userId).ReservationStem + requestId;
        var fields = await ReadReservationAsync(reservationKey, cancellationToken).ConfigureAwait(false);
        if (fields is null) return SettleOutcome.AlreadySettled;
        return await ReleaseAsync(null, requestId, reservationKey, fields["key_id"], _names.ForUser(fields["user_id"]), fields["budget_key"], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Moves a live reservation's lease (and its concurrency slots) to now + <paramref name="lease"/>, for
    /// streams that outlive the original lease. False when the reservation already ended.</summary>
    public async Task<bool> ExtendLeaseAsync(Reservation reservation, TimeSpan lease, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lease, TimeSpan.Zero);
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var userNames = _names.ForUser(reservation.UserId);
        RedisArg[] keys = [ReservationKeyOf(reservation, userNames), userNames.Reservations, _names.ForKey(reservation.UserId, reservation.KeyId).Inflight, userNames.Inflight];
        RedisArg[] args = [nowMs, reservation.RequestId, nowMs + (long)lease.TotalMilliseconds];
        var reply = await _redis.EvalAsync(EnforcementScripts.Extend, keys, args, cancellationToken).ConfigureAwait(false);
        return reply.AsInt64() == 1;
    }

    /// <summary>The budget period containing <paramref name="now"/>, cached per (period, zone) until it ends.</summary>
    private BudgetPeriod? CurrentPeriod(string period, string? zone, DateTimeOffset now)
    {
        var cacheKey = (period, zone ?? "");
        if (_periods.TryGetValue(cacheKey, out var cached) && cached.Start <= now && now < cached.End) return cached;
        BudgetPeriod? computed;
        try
        {
            computed = BudgetCalendar.CurrentPeriod(period, zone, now);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            // A zone this host does not know (a typo, or an image without tzdata) must not fail every request
            // of the user: keep enforcing the budget on UTC days and say so (once per period, thanks to the cache).
            Log.UnknownBudgetTimeZone(_logger, zone ?? "");
            computed = BudgetCalendar.CurrentPeriod(period, "UTC", now);
        }
        if (computed is { } c) _periods[cacheKey] = c;
        return computed;
    }

    private async Task<SettleOutcome> ReleaseAsync(Reservation? reservation, string requestId, string reservationKey, string keyId, UserNames userNames, string budgetKey, CancellationToken cancellationToken)
    {
        var keys = RedisArgBuffer.Rent();
        var args = RedisArgBuffer.Rent();
        RespValue reply;
        try
        {
            AddFinishKeys(keys, reservationKey, keyId, userNames, budgetKey);
            if (reservation is null) AddUnstampedFinishArgs(args, _time.GetUtcNow().ToUnixTimeMilliseconds(), requestId, "release", 0, 0);
            else AddFinishArgs(args, reservation, "release", 0, 0);
            reply = await _redis.EvalAsync(EnforcementScripts.Finish, keys, args, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            RedisArgBuffer.Return(keys);
            RedisArgBuffer.Return(args);
        }
        return reply.AsInt64() == 1 ? SettleOutcome.Settled : SettleOutcome.AlreadySettled;
    }

    private async Task<Dictionary<string, string>?> ReadReservationAsync(string reservationKey, CancellationToken cancellationToken)
    {
        var reply = await _redis.ExecuteAsync("HGETALL", [reservationKey], cancellationToken).ConfigureAwait(false);
        var items = reply.Items;
        if (items.Count == 0) return null;
        var fields = new Dictionary<string, string>(items.Count / 2, StringComparer.Ordinal);
        for (var i = 0; i + 1 < items.Count; i += 2) fields[items[i].AsString()!] = items[i + 1].AsString() ?? "";
        return fields;
    }

    private void AddFinishKeys(RedisArgBuffer keys, string reservationKey, string keyId, UserNames userNames, string budgetKey)
    {
        var keyNames = _names.ForKey(userNames.UserId, keyId);
        keys.Add(reservationKey); keys.Add(userNames.Reservations);
        keys.Add(keyNames.Inflight); keys.Add(userNames.Inflight);
        keys.Add(keyNames.RateCounters); keys.Add(userNames.RateCounters);
        keys.Add(keyNames.Lifetime); keys.Add(userNames.Balance); keys.Add(budgetKey); keys.Add(userNames.UsageStream);
    }

    /// <summary>Finish's ARGV 1-13. A reservation still equal to what this process's admission stored sends that
    /// admission's numbers, so the script need not read the reservation hash; any other (built by hand, or a copy
    /// with changed fields) makes the script read them.</summary>
    private void AddFinishArgs(RedisArgBuffer args, Reservation reservation, string mode, long actualMicros, long actualTokens)
    {
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        if (reservation.Admitted is not { } stamp || !stamp.Matches(reservation))
        {
            AddUnstampedFinishArgs(args, nowMs, reservation.RequestId, mode, actualMicros, actualTokens);
            return;
        }
        args.Add(nowMs); args.Add(reservation.RequestId); args.Add(mode); args.Add(actualMicros); args.Add(actualTokens);
        args.Add(stamp.ReservedMicros); args.Add(stamp.EstimatedTokens); args.Add(stamp.StartedAtMs / MinuteMs); args.Add(stamp.StartedAtMs / DayMs);
        args.Add(nowMs / MinuteMs); args.Add(nowMs / DayMs);
        args.Add(actualMicros - stamp.ReservedMicros); args.Add(actualTokens - stamp.EstimatedTokens);
    }

    private static void AddUnstampedFinishArgs(RedisArgBuffer args, long nowMs, string requestId, string mode, long actualMicros, long actualTokens)
    {
        args.Add(nowMs); args.Add(requestId); args.Add(mode); args.Add(actualMicros); args.Add(actualTokens);
        args.Add(""); args.Add(""); args.Add(""); args.Add("");
        args.Add(nowMs / MinuteMs); args.Add(nowMs / DayMs);
        args.Add(""); args.Add("");
    }

    // A reservation made by this process carries its key name; one built by a caller may not.
    private static string ReservationKeyOf(Reservation reservation, UserNames userNames)
    {
        var stem = userNames.ReservationStem;
        return reservation.Admitted?.ReservationKey is { } cached && cached.Length == stem.Length + reservation.RequestId.Length
            && cached.EndsWith(reservation.RequestId, StringComparison.Ordinal) && cached.StartsWith(stem, StringComparison.Ordinal)
            ? cached
            : stem + reservation.RequestId;
    }

    private static long Limit(long? value) => value ?? -1;

    // Little-endian int64, as the script's struct.unpack('<i8i8...') reads it.
    private static void Pack(ref Span<byte> destination, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(destination, value);
        destination = destination[sizeof(long)..];
    }
}

internal static partial class Log
{
    [LoggerMessage(EventId = 3101, Level = LogLevel.Information, Message = "Charged the reservation of request {RequestId} ({CostUsd} USD): its lease passed without settlement.")]
    public static partial void ReservationExpired(ILogger logger, string requestId, decimal costUsd);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Warning, Message = "Budget time zone '{Zone}' is unknown on this host; budget periods use UTC until it is fixed.")]
    public static partial void UnknownBudgetTimeZone(ILogger logger, string zone);
}
