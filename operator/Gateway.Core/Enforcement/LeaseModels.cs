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
    /// <summary>How long the lease may live; it also ends with the current minute (its slices are counted in that
    /// minute's windows) and with the budget period.</summary>
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
    public DateTimeOffset GrantedAt { get; init; }
    public DateTimeOffset ExpiresAt { get; init; }
}

/// <summary>The outcome of <see cref="Enforcer.GrantLeaseAsync"/>: a lease, or the first dimension too close to its
/// limit for leasing (admit this pair exactly).</summary>
public sealed record LeaseGrant(QuotaLease? Lease, RejectionReason Short)
{
    public bool Granted => Lease is not null;
}

/// <summary>What returning or reclaiming a lease gave back (negative money: its requests cost more than they reserved,
/// and the difference was charged).</summary>
public readonly record struct LeaseRemainder(long Money, long Requests, long Tokens);
