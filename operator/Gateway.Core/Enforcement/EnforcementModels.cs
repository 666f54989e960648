using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;

namespace Gateway.Core.Enforcement;

/// <summary>Why an admission was refused: the first failing check, in this order.</summary>
public enum RejectionReason
{
    None = 0,
    KeyRpm = 1,
    KeyRpd = 2,
    UserRpm = 3,
    UserRpd = 4,
    KeyTpm = 5,
    KeyTpd = 6,
    UserTpm = 7,
    UserTpd = 8,
    KeyConcurrency = 9,
    UserConcurrency = 10,
    KeyTokenLimit = 11,
    KeySpendLimit = 12,
    InsufficientBalance = 13,
    BudgetExhausted = 14,
}

/// <summary>Everything the admission script needs for one request.</summary>
public sealed record AdmissionRequest
{
    /// <summary>Unique per request across all replicas (the proxy's own id, not a client-supplied header).</summary>
    public required string RequestId { get; init; }
    public required KeyProjection Key { get; init; }
    public required UserProjection User { get; init; }
    /// <summary>Upper bound of the request's cost in micro-dollars (prompt estimate + max output tokens, priced,
    /// discounts applied; see <see cref="Pricing.Money.ToMicrosCeiling"/>). Held against the balance, the
    /// period budget and the key's spend limit until settlement.</summary>
    public required long ReservedMicros { get; init; }
    /// <summary>Estimated prompt tokens.</summary>
    public long EstimatedInputTokens { get; init; }
    /// <summary>The request's max output tokens (or the model's default cap). With the prompt estimate it is
    /// checked against tokens-per-minute/day and tokenLimit, as OpenAI does.</summary>
    public long MaxOutputTokens { get; init; }
    public string Model { get; init; } = "";
    public string Route { get; init; } = "";
    /// <summary>Recorded on the reservation so an orphan's usage event names it; usually unknown yet.</summary>
    public string Upstream { get; init; } = "";
    public string PriceVersion { get; init; } = "";
    /// <summary>How long the reservation and its concurrency slots live without settlement; defaults to
    /// <see cref="EnforcerOptions.DefaultLease"/>. Must exceed the proxy's total request timeout (or be
    /// renewed with <see cref="Enforcer.ExtendLeaseAsync"/>), or a live request is charged as an orphan.</summary>
    public TimeSpan? Lease { get; init; }

    public long EstimatedTokens => EstimatedInputTokens + MaxOutputTokens;
}

/// <summary>Numbers for x-ratelimit-limit-*, -remaining-* and -reset-* (OpenAI semantics) from the most
/// restrictive configured window: <see cref="Reset"/> is the time until the window is back to its full limit.</summary>
public readonly record struct RateLimitStatus(long Limit, long Remaining, TimeSpan Reset);

/// <summary>
/// A key's and its user's request and token windows, normalised to one moment: counts of the current minute, the previous
/// minute and the UTC day, as the Admit and Grant scripts return them. The x-ratelimit-* headers are computed from them.
/// </summary>
public readonly record struct WindowCounts(
    long KeyRequestsMinute, long KeyRequestsPreviousMinute, long KeyRequestsDay,
    long UserRequestsMinute, long UserRequestsPreviousMinute, long UserRequestsDay,
    long KeyTokensMinute, long KeyTokensPreviousMinute, long KeyTokensDay,
    long UserTokensMinute, long UserTokensPreviousMinute, long UserTokensDay)
{
    /// <summary>The 12 counts of a script reply from <paramref name="start"/> on, in the order of the parameters.</summary>
    internal static WindowCounts Read(IReadOnlyList<RespValue> reply, int start) => new(
        reply[start].AsInt64(), reply[start + 1].AsInt64(), reply[start + 2].AsInt64(),
        reply[start + 3].AsInt64(), reply[start + 4].AsInt64(), reply[start + 5].AsInt64(),
        reply[start + 6].AsInt64(), reply[start + 7].AsInt64(), reply[start + 8].AsInt64(),
        reply[start + 9].AsInt64(), reply[start + 10].AsInt64(), reply[start + 11].AsInt64());

    /// <summary>These counts without <paramref name="requests"/> and <paramref name="tokens"/> in the current minute and
    /// the day (of the key and of the user): what they were before a lease's slice, or its unused part, was counted.</summary>
    internal WindowCounts Less(long requests, long tokens) => this with
    {
        KeyRequestsMinute = KeyRequestsMinute - requests, KeyRequestsDay = KeyRequestsDay - requests,
        UserRequestsMinute = UserRequestsMinute - requests, UserRequestsDay = UserRequestsDay - requests,
        KeyTokensMinute = KeyTokensMinute - tokens, KeyTokensDay = KeyTokensDay - tokens,
        UserTokensMinute = UserTokensMinute - tokens, UserTokensDay = UserTokensDay - tokens,
    };
}

/// <summary>An admitted request's hold on balance, budget, limits and concurrency slots. Keep it until
/// <see cref="Enforcer.SettleAsync"/> or <see cref="Enforcer.ReleaseAsync(Reservation, CancellationToken)"/>.</summary>
public sealed record Reservation
{
    public required string RequestId { get; init; }
    public required string KeyId { get; init; }
    public int KeyVersion { get; init; }
    public required string UserId { get; init; }
    public long ReservedMicros { get; init; }
    public long EstimatedTokens { get; init; }
    /// <summary>Redis key of the budget period the reservation counts against (it may end before settlement).</summary>
    public required string BudgetKey { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset LeaseExpiresAt { get; init; }
    /// <summary>What admission stored, kept so settlement neither builds the hash's key name again nor has the
    /// script read the hash back; used only while this reservation still matches it.</summary>
    internal AdmissionStamp? Admitted { get; init; }
}

/// <summary>The values an admission wrote into a reservation hash (and its key name).</summary>
internal sealed record AdmissionStamp(string ReservationKey, string RequestId, string BudgetKey, long ReservedMicros, long EstimatedTokens, long StartedAtMs)
{
    /// <summary>True while <paramref name="r"/> still says what was admitted (a copy made with <c>with</c> may not).</summary>
    public bool Matches(Reservation r) =>
        string.Equals(r.RequestId, RequestId, StringComparison.Ordinal) && string.Equals(r.BudgetKey, BudgetKey, StringComparison.Ordinal)
        && r.ReservedMicros == ReservedMicros && r.EstimatedTokens == EstimatedTokens && r.StartedAt.ToUnixTimeMilliseconds() == StartedAtMs;
}

/// <summary>The outcome of <see cref="Enforcer.AdmitAsync"/>.</summary>
public sealed record AdmissionResult
{
    public bool Allowed => Reason == RejectionReason.None;
    public RejectionReason Reason { get; init; }
    /// <summary>When to retry a rejected request; null when waiting cannot help (lifetime limits, balance,
    /// a budget that never resets, a request larger than a token window).</summary>
    public TimeSpan? RetryAfter { get; init; }
    /// <summary>Requests window for headers; null when the key and user have no request limits.</summary>
    public RateLimitStatus? Requests { get; init; }
    /// <summary>Tokens window for headers; null when the key and user have no token limits.</summary>
    public RateLimitStatus? Tokens { get; init; }
    /// <summary>Set when allowed.</summary>
    public Reservation? Reservation { get; init; }
}

/// <summary>A finished request: its reservation and what it actually used.</summary>
public sealed record Settlement
{
    public required Reservation Reservation { get; init; }
    /// <summary>Written to the usage stream as is; <see cref="UsageEvent.RequestId"/> must equal the reservation's.</summary>
    public required UsageEvent Usage { get; init; }
    /// <summary>Actual cost in micro-dollars; defaults to <see cref="Pricing.Money.ToMicrosCeiling"/> of <see cref="UsageEvent.Cost"/>.</summary>
    public long? ActualCostMicros { get; init; }
}

/// <summary>The outcome of ending a reservation.</summary>
public enum SettleOutcome
{
    /// <summary>This call ended the reservation.</summary>
    Settled,
    /// <summary>The reservation had already been settled, released or expired; nothing changed.</summary>
    AlreadySettled,
}

/// <summary>Settings for <see cref="Enforcer"/>.</summary>
public sealed record EnforcerOptions
{
    /// <summary>Reservation lease when the request does not say; longer than the proxy's total timeout.</summary>
    public TimeSpan DefaultLease { get; init; } = TimeSpan.FromMinutes(15);
    /// <summary>Suggested wait after a concurrency rejection (when a slot frees is unknowable).</summary>
    public TimeSpan ConcurrencyRetryAfter { get; init; } = TimeSpan.FromSeconds(1);
}
