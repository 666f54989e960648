using Gateway.Core.Projection;

namespace Gateway.Core.Enforcement;

/// <summary>What a replica asks for when it leases quota for one (user, key) pair (<see cref="Enforcer.GrantLeaseAsync"/>).</summary>
public sealed record LeaseRequest
{
    /// <summary>Unique across replicas and time (the caller's random id).</summary>
    public required string LeaseId { get; init; }
    public required KeyProjection Key { get; init; }
    public required UserProjection User { get; init; }
    /// <summary>The replica holding the lease (for the sweeper's logs and the lease hash).</summary>
    public required string Owner { get; init; }
    /// <summary>Micro-dollars deducted from the balance and counted against the budget and spend limit at grant.</summary>
    public long Money { get; init; }
    /// <summary>Requests counted in the request windows (rpm, rpd) at grant.</summary>
    public long Requests { get; init; }
    /// <summary>Tokens counted in the token windows (tpm, tpd) and the key's lifetime tokens at grant.</summary>
    public long Tokens { get; init; }
    /// <summary>Concurrency slots, held only where the key or the user has maxConcurrent (at most 4,096).</summary>
    public int Slots { get; init; }
    /// <summary>How long the lease may live; it also ends with the current minute when a minute limit applies (its
    /// slices are counted in that minute's windows), with the UTC day when a day limit does, and with the budget period.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A grant needs this many times its slice still free in every limited dimension; below that the pair is
    /// near an edge and is admitted exactly (per request). At least 1.</summary>
    public int HeadroomFactor { get; init; } = 4;
}

/// <summary>A granted lease: what it holds and until when. The replica admits against it locally.</summary>
public sealed record QuotaLease
{
    public required string LeaseId { get; init; }
    public required string KeyId { get; init; }
    public required string UserId { get; init; }
    /// <summary>Redis key of the budget period the money was counted against.</summary>
    public required string BudgetKey { get; init; }
    public long Money { get; init; }
    public long Requests { get; init; }
    public long Tokens { get; init; }
    /// <summary>Concurrency slots held (0 when no concurrency limit applies): at most this many of its requests in flight.</summary>
    public int Slots { get; init; }
    public DateTimeOffset GrantedAt { get; init; }
    public DateTimeOffset ExpiresAt { get; init; }
    /// <summary>The key's and user's windows right after the grant counted the slices (normalised to <see cref="GrantedAt"/>):
    /// what the x-ratelimit-* headers of the requests admitted under the lease are computed from.</summary>
    public WindowCounts Counts { get; init; }
}

/// <summary>The outcome of <see cref="Enforcer.GrantLeaseAsync"/>: a lease, or the first dimension too close to its
/// limit for leasing (admit this pair exactly).</summary>
public sealed record LeaseGrant(QuotaLease? Lease, RejectionReason Short)
{
    public bool Granted => Lease is not null;
}

/// <summary>What a user's open leases hold but have not used (<see cref="Enforcer.LeaseHoldingsAsync"/>), in micro-dollars and
/// tokens: <paramref name="Money"/> out of the balance, <paramref name="BudgetMoney"/> of it counted in the budget period
/// asked about, <paramref name="KeyMoney"/> and <paramref name="KeyTokens"/> in the lifetime spend and tokens of the key
/// asked about.</summary>
public readonly record struct LeaseHoldings(long Money, long BudgetMoney, long KeyMoney, long KeyTokens);

/// <summary>What returning or reclaiming a lease gave back (negative money: its requests cost more than they reserved,
/// and the difference was charged).</summary>
public readonly record struct LeaseRemainder(long Money, long Requests, long Tokens);

/// <summary>A request admitted locally against a lease (its in-flight record, so that the sweeper can charge it at its
/// reservation if this replica dies before settling it).</summary>
public sealed record LeasedAdmission
{
    public required string RequestId { get; init; }
    public int KeyVersion { get; init; }
    public long ReservedMicros { get; init; }
    public long EstimatedInputTokens { get; init; }
    public long MaxOutputTokens { get; init; }
    public DateTimeOffset StartedAt { get; init; }
    public string Model { get; init; } = "";
    public string Route { get; init; } = "";
    public string Upstream { get; init; } = "";
    public string PriceVersion { get; init; } = "";
}

/// <summary>A settled leased request: its usage event and actual cost.</summary>
/// <param name="AdmissionFlushed">Whether its <see cref="LeasedAdmission"/> reached Redis in an earlier flush (then its
/// in-flight record is removed; one admitted and settled in the same flush is never written).</param>
public sealed record LeasedSettlement(Usage.UsageEvent Usage, long ActualMicros, bool AdmissionFlushed);

/// <summary>A leased request that never reached an upstream: it counts as a request, nothing is charged.</summary>
public sealed record LeasedRelease(string RequestId, bool AdmissionFlushed);

/// <summary>One lease's part of a flush (<see cref="Enforcer.FlushLeasedAsync"/>).</summary>
public sealed class LeaseFlush
{
    public required QuotaLease Lease { get; init; }
    public List<LeasedAdmission> Admissions { get; } = [];
    public List<LeasedSettlement> Settlements { get; } = [];
    public List<LeasedRelease> Releases { get; } = [];
}

/// <summary>What a flush did for one lease: whether the lease was still there (else nothing was written for it and its
/// settlements were handed to the usage outbox as lost, to be charged again), and each settlement's stream entry id.</summary>
public sealed record LeaseFlushResult(bool LeaseAlive, IReadOnlyList<string?> StreamIds);
