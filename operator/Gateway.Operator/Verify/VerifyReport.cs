namespace Gateway.Operator.Verify;

/// <summary>The kinds of violation <see cref="ConservationChecker"/> reports (stable codes, also in the JSON output).</summary>
public static class ViolationKinds
{
    /// <summary>Redis balance + reservations + pending usage is outside what the ledger allows (rounding included).</summary>
    public const string BalanceMismatch = "balance_mismatch";
    /// <summary>A live user has no balance in Redis.</summary>
    public const string BalanceMissing = "balance_missing";
    /// <summary>A grant in the ledger the Redis balance has not been credited with.</summary>
    public const string GrantNotCredited = "grant_not_credited";
    /// <summary>Redis records a grant as credited that the ledger does not hold.</summary>
    public const string GrantCreditedWithoutLedger = "grant_credited_without_ledger";
    /// <summary>A usage row with a cost and no consume entry.</summary>
    public const string UsageWithoutConsume = "usage_without_consume";
    /// <summary>A consume entry with no usage row.</summary>
    public const string ConsumeWithoutUsage = "consume_without_usage";
    /// <summary>A consume entry whose amount or user differs from its usage row.</summary>
    public const string ConsumeMismatch = "consume_mismatch";
    /// <summary>A request id recorded twice (usage_log, consume entries, the usage stream, or an open reservation of a
    /// request already charged).</summary>
    public const string DuplicateRequestId = "duplicate_request_id";
    /// <summary>A usage row with a negative cost.</summary>
    public const string NegativeCost = "negative_cost";
    /// <summary>An open reservation whose lease passed more than the grace ago: the sweeper should have charged it.</summary>
    public const string ExpiredReservation = "expired_reservation";
    /// <summary>A quota lease past its expiry and the sweeper's grace: its replica died and the sweeper is not running.</summary>
    public const string ExpiredLease = "expired_lease";
    /// <summary>A reservation or pending usage event of a user PostgreSQL does not know.</summary>
    public const string UnknownUser = "unknown_user";
    /// <summary>A usage stream entry the ledger writer cannot read (no request id, user or cost).</summary>
    public const string UnreadableUsageEvent = "unreadable_usage_event";
    /// <summary>A usage row persisted while the snapshot was taken could not be placed before or after it; the user
    /// could not be checked (only reported when every attempt hit it).</summary>
    public const string Indeterminate = "indeterminate";

    /// <summary>Kinds a live system can show for a moment (a grant between its ledger insert and its credit, a
    /// reconcile in progress, a persist racing the snapshot, a user created after the user list was read): the
    /// checker tries again before reporting them.</summary>
    public static bool MayBeTransient(string kind) =>
        kind is BalanceMismatch or BalanceMissing or GrantNotCredited or GrantCreditedWithoutLedger or Indeterminate or UnknownUser;
}

/// <summary>One violation: what, whose (user id and namespace/name, request id) and the numbers; never a secret.</summary>
public sealed record Violation(string Kind, string Detail)
{
    public string? UserId { get; init; }
    /// <summary>namespace/name of the UserQuota, when known.</summary>
    public string? User { get; init; }
    public string? RequestId { get; init; }
}

/// <summary>What one run looked at.</summary>
public sealed record VerifyCounts
{
    public int Users { get; set; }
    public int UsersChecked { get; set; }
    /// <summary>Deleted users without a Redis balance: nothing left to compare.</summary>
    public int UsersSkipped { get; set; }
    public long GrantEntries { get; set; }
    public long ConsumeEntries { get; set; }
    /// <summary>refund, adjust and expire entries.</summary>
    public long OtherEntries { get; set; }
    public decimal LedgerSumUsd { get; set; }
    public long UsageRows { get; set; }
    public long UsageRowsWithCost { get; set; }
    public decimal UsageCostUsd { get; set; }
    public long RedisBalanceMicros { get; set; }
    public int OpenReservations { get; set; }
    public long ReservedMicros { get; set; }
    /// <summary>Reservations zset members without a hash (already ended; the sweeper drops them). Harmless.</summary>
    public int LeftoverReservationMembers { get; set; }
    public int ExpiredReservations { get; set; }
    /// <summary>Open quota leases (hot path v2).</summary>
    public int OpenLeases { get; set; }
    /// <summary>Money the open leases hold (taken from balances at grant, not yet used by a flushed settlement).</summary>
    public long LeasedMicros { get; set; }
    public int StreamEntries { get; set; }
    /// <summary>Stream entries not yet in usage_log: counted as outstanding.</summary>
    public int PendingUsageEvents { get; set; }
    public long PendingMicros { get; set; }
    /// <summary>Stream entries already in usage_log, waiting for the ledger writer's XACK/XDEL.</summary>
    public int PersistedAwaitingAck { get; set; }
    /// <summary>Σ over users of the sub-micro-dollar rounding the identity allows (see README).</summary>
    public long RoundingAllowanceMicros { get; set; }
}

/// <summary>The result of a verify run.</summary>
public sealed record VerifyReport
{
    public required DateTimeOffset CheckedAt { get; init; }
    public required int Attempts { get; init; }
    public required VerifyCounts Counts { get; init; }
    public required IReadOnlyList<Violation> Violations { get; init; }
    /// <summary>Violations found per kind, including those beyond the listed maximum.</summary>
    public required IReadOnlyDictionary<string, long> ViolationCounts { get; init; }
    public bool Clean => ViolationCounts.Count == 0;
}
