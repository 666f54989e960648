using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Npgsql;

namespace Gateway.Operator.Verify;

/// <summary>
/// Checks, read-only, that money is conserved between the ledger (PostgreSQL) and Redis, and that usage rows and
/// consume entries match one to one. The identity per user, in micro-dollars (README.md in this folder):
/// <c>Σ⌊ledger entry⌋ ≤ balance + Σ reserved + Σ⌈pending usage⌉ ≤ ⌊Σ ledger⌋</c>.
/// </summary>
/// <remarks>
/// Races with a live system: Redis is read in one script (balances, credited grants, reservations, the usage stream),
/// between two readings of PostgreSQL's clock t0 and t1; PostgreSQL is read afterwards in one snapshot. A usage row
/// created before t0 (its ledger writer transaction started then) was settled in Redis before the snapshot, so it
/// counts in the ledger and not as pending; a row created after t0 counts as pending usage if the snapshot's stream
/// holds it, and is left out otherwise (settled after the snapshot) — except a row created between t0 and t1 that the
/// stream no longer held, which could be either: that user is tried again. Any check that a live system can fail
/// for a moment (<see cref="ViolationKinds.MayBeTransient"/>) is retried until <see cref="VerifyOptions.SettleWait"/>
/// has passed; the report is the last attempt's.
/// </remarks>
public sealed class ConservationChecker(NpgsqlDataSource dataSource, IRedisClient redis, ProjectionKeys keys, VerifyOptions options, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly PostgresMoneyReader _reader = new(dataSource, options.MaxListed);

    /// <summary>For tests: runs (with the attempt number) right after the Redis snapshot, before t1 is read, so a test
    /// can make the system move exactly where a live one could.</summary>
    internal Func<int, Task>? AfterRedisSnapshot { get; init; }

    /// <summary>For tests: runs after t1, before PostgreSQL is read.</summary>
    internal Func<int, Task>? BeforeLedgerRead { get; init; }

    public async Task<VerifyReport> RunAsync(CancellationToken ct = default)
    {
        var deadline = _time.GetUtcNow() + options.SettleWait;
        var delay = TimeSpan.FromMilliseconds(200);
        for (var attempt = 1; ; attempt++)
        {
            var (counts, found) = await AttemptAsync(attempt, ct).ConfigureAwait(false);
            if (!found.Any(v => ViolationKinds.MayBeTransient(v.Kind)) || _time.GetUtcNow() + delay > deadline)
                return found.ToReport(_time.GetUtcNow(), attempt, counts, options.MaxListed);
            await Task.Delay(delay, _time, ct).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 1000));
        }
    }

    private async Task<(VerifyCounts, ViolationList)> AttemptAsync(int attempt, CancellationToken ct)
    {
        var users = await _reader.ReadUsersAsync(ct).ConfigureAwait(false);
        var t0 = await _reader.ClockAsync(ct).ConfigureAwait(false);
        var snap = await RedisMoneySnapshot.ReadAsync(redis, keys, users.Select(u => u.Id.ToString()).ToList(), ct).ConfigureAwait(false);
        if (AfterRedisSnapshot is { } afterSnapshot) await afterSnapshot(attempt).ConfigureAwait(false);
        var t1 = await _reader.ClockAsync(ct).ConfigureAwait(false);
        if (BeforeLedgerRead is { } beforeRead) await beforeRead(attempt).ConfigureAwait(false);
        var streamIds = snap.Stream.Where(e => e.Readable).Select(e => e.RequestId!).Distinct(StringComparer.Ordinal).ToList();
        var reservationIds = snap.Reservations.Where(r => r.HasHash).Select(r => r.RequestId).ToList();
        var facts = await _reader.ReadAsync(t0, t1, streamIds, reservationIds, ct).ConfigureAwait(false);

        var found = new ViolationList();
        foreach (var rows in facts.Violations) found.AddCounted(rows);
        var counts = new VerifyCounts
        {
            Users = users.Count,
            GrantEntries = facts.GrantEntries,
            ConsumeEntries = facts.ConsumeEntries,
            OtherEntries = facts.OtherEntries,
            LedgerSumUsd = facts.LedgerSumUsd,
            UsageRows = facts.UsageRows,
            UsageRowsWithCost = facts.UsageRowsWithCost,
            UsageCostUsd = facts.UsageCostUsd,
            StreamEntries = snap.Stream.Count,
        };
        var known = users.Select(u => u.Id.ToString()).ToHashSet(StringComparer.Ordinal);
        var pending = CheckStream(snap, facts, known, counts, found);
        var reserved = CheckReservations(snap, facts, streamIds, known, counts, found);
        CheckLeases(snap, known, reserved, counts, found);
        CheckBalances(users, snap, facts, streamIds, reserved, pending, counts, found);
        return (counts, found);
    }

    /// <summary>Pending usage per user: stream entries not yet in usage_log, at what settlement charged for them.</summary>
    private static Dictionary<string, long> CheckStream(RedisMoneySnapshot snap, LedgerFacts facts, HashSet<string> known, VerifyCounts counts, ViolationList found)
    {
        var pending = new Dictionary<string, long>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in snap.Stream)
        {
            if (!e.Readable)
            {
                found.Add(new Violation(ViolationKinds.UnreadableUsageEvent, $"usage stream entry {e.EntryId} lacks a request id, a user id or a valid cost")
                    { RequestId = e.RequestId, UserId = e.UserId });
                continue;
            }
            var id = e.RequestId!;
            if ((seen[id] = seen.GetValueOrDefault(id) + 1) == 2)
                found.Add(new Violation(ViolationKinds.DuplicateRequestId, "the usage stream holds the request more than once") { RequestId = id, UserId = e.UserId });
            if (facts.PersistedStreamIds.Contains(id)) { counts.PersistedAwaitingAck++; continue; }
            counts.PendingUsageEvents++;
            counts.PendingMicros += e.ChargedMicros!.Value;
            pending[e.UserId!] = pending.GetValueOrDefault(e.UserId!) + e.ChargedMicros.Value;
            if (!known.Contains(e.UserId!))
                found.Add(new Violation(ViolationKinds.UnknownUser, $"pending usage of {e.ChargedMicros} µ$ for a user PostgreSQL does not know") { RequestId = id, UserId = e.UserId });
        }
        return pending;
    }

    /// <summary>Reserved micro-dollars per user; flags reservations past their lease and reservations of charged requests.</summary>
    private Dictionary<string, long> CheckReservations(RedisMoneySnapshot snap, LedgerFacts facts, List<string> streamIds, HashSet<string> known, VerifyCounts counts, ViolationList found)
    {
        var reserved = new Dictionary<string, long>(StringComparer.Ordinal);
        var inStream = streamIds.ToHashSet(StringComparer.Ordinal);
        var nowMs = snap.RedisTime.ToUnixTimeMilliseconds();
        var graceMs = (long)options.LeaseGrace.TotalMilliseconds;
        foreach (var r in snap.Reservations)
        {
            if (!r.HasHash) { counts.LeftoverReservationMembers++; continue; }
            counts.OpenReservations++;
            counts.ReservedMicros += r.ReservedMicros;
            var user = r.UserId ?? "";
            reserved[user] = reserved.GetValueOrDefault(user) + r.ReservedMicros;
            if (!known.Contains(user))
                found.Add(new Violation(ViolationKinds.UnknownUser, $"open reservation of {r.ReservedMicros} µ$ for a user PostgreSQL does not know") { RequestId = r.RequestId, UserId = r.UserId });
            if (r.ExpiresAtMs < nowMs - graceMs)
            {
                counts.ExpiredReservations++;
                found.Add(new Violation(ViolationKinds.ExpiredReservation,
                    $"reservation of {r.ReservedMicros} µ$ outlived its lease by {TimeSpan.FromMilliseconds(nowMs - r.ExpiresAtMs):g} (lease ended {DateTimeOffset.FromUnixTimeMilliseconds(r.ExpiresAtMs):O}); the sweeper should have charged it")
                    { RequestId = r.RequestId, UserId = r.UserId });
            }
            if (inStream.Contains(r.RequestId) || facts.ChargedReservationIds.Contains(r.RequestId))
                found.Add(new Violation(ViolationKinds.DuplicateRequestId, "an open reservation of a request already charged (usage stream or usage_log)")
                    { RequestId = r.RequestId, UserId = r.UserId });
        }
        return reserved;
    }

    /// <summary>Adds each open quota lease's outstanding money to its user's held amount (it left the balance at grant);
    /// flags leases past their expiry and the grace the sweeper allows.</summary>
    private void CheckLeases(RedisMoneySnapshot snap, HashSet<string> known, Dictionary<string, long> held, VerifyCounts counts, ViolationList found)
    {
        var nowMs = snap.RedisTime.ToUnixTimeMilliseconds();
        var graceMs = (long)options.LeaseGrace.TotalMilliseconds;
        foreach (var l in snap.Leases)
        {
            if (!l.HasHash) continue;
            counts.OpenLeases++;
            counts.LeasedMicros += l.OutstandingMicros;
            var user = l.UserId ?? "";
            held[user] = held.GetValueOrDefault(user) + l.OutstandingMicros;
            if (!known.Contains(user))
                found.Add(new Violation(ViolationKinds.UnknownUser, $"open quota lease {l.LeaseId} holding {l.OutstandingMicros} µ$ for a user PostgreSQL does not know") { UserId = l.UserId });
            if (l.ExpiresAtMs < nowMs - graceMs)
                found.Add(new Violation(ViolationKinds.ExpiredLease,
                    $"quota lease {l.LeaseId} holding {l.OutstandingMicros} µ$ outlived its expiry by {TimeSpan.FromMilliseconds(nowMs - l.ExpiresAtMs):g}; the sweeper should have reclaimed it")
                    { UserId = l.UserId });
        }
    }

    private void CheckBalances(IReadOnlyList<LedgerUser> users, RedisMoneySnapshot snap, LedgerFacts facts, List<string> streamIds,
        Dictionary<string, long> reserved, Dictionary<string, long> pending, VerifyCounts counts, ViolationList found)
    {
        var grantsByUser = facts.Grants.ToLookup(g => g.UserId);
        var inStream = streamIds.ToHashSet(StringComparer.Ordinal);
        // A row persisted between t0 and t1 that the snapshot's stream no longer held: settled before or after it?
        var undecided = facts.LateRows.Where(r => r.BeforeSnapshotEnd && !inStream.Contains(r.RequestId) && r.UserId is not null)
            .Select(r => r.UserId!.Value).ToHashSet();
        foreach (var u in users)
        {
            var id = u.Id.ToString();
            var state = snap.Users[id];
            var tag = (Violation v) => v with { UserId = id, User = u.DisplayName };
            if (state.BalanceMicros is not { } balance)
            {
                if (u.Deleted && state.BalanceText is null) { counts.UsersSkipped++; continue; }
                found.Add(tag(new Violation(ViolationKinds.BalanceMissing,
                    state.BalanceText is null ? "no balance in Redis" : $"the Redis balance '{state.BalanceText}' is not an integer")));
                continue;
            }
            counts.UsersChecked++;
            counts.RedisBalanceMicros += balance;

            decimal ledger = 0, floorSum = 0;
            var ledgerGrantIds = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (_, grantId, amount) in grantsByUser[u.Id])
            {
                ledgerGrantIds.Add(grantId);
                if (state.CreditedGrants.Contains(grantId))
                {
                    ledger += amount;
                    floorSum += decimal.Floor(amount * 1_000_000m);
                }
                else
                {
                    found.Add(tag(new Violation(ViolationKinds.GrantNotCredited, $"grant '{grantId}' of {amount} USD is in the ledger but not in the Redis balance")));
                }
            }
            foreach (var grantId in state.CreditedGrants.Where(g => !ledgerGrantIds.Contains(g)).Order(StringComparer.Ordinal))
                found.Add(tag(new Violation(ViolationKinds.GrantCreditedWithoutLedger, $"Redis records grant '{grantId}' as credited; the ledger has no such grant")));
            foreach (var sum in new[] { facts.Consumed.GetValueOrDefault(u.Id), facts.Other.GetValueOrDefault(u.Id) })
            {
                ledger += sum.Usd;
                floorSum += sum.FloorMicros;
            }
            if (undecided.Contains(u.Id))
            {
                found.Add(tag(new Violation(ViolationKinds.Indeterminate, "usage was persisted while the snapshot was taken; the balance could not be compared")));
                continue;
            }

            var lower = (long)floorSum;
            var upper = (long)decimal.Floor(ledger * 1_000_000m);
            var r = reserved.GetValueOrDefault(id);
            var p = pending.GetValueOrDefault(id);
            var held = balance + r + p;
            counts.RoundingAllowanceMicros += upper - lower;
            if (held < lower || held > (options.Strict ? lower : upper))
            {
                var off = held < lower ? $"{lower - held} µ$ short"
                    : held > upper ? $"{held - upper} µ$ over"
                    : $"{held - lower} µ$ over the per-entry rounding (--strict; a balance rebuilt from the ledger sum explains it)";
                found.Add(tag(new Violation(ViolationKinds.BalanceMismatch,
                    $"Redis holds {held} µ$ (balance {balance} + reserved and leased {r} + pending usage {p}); the ledger sums to {ledger} USD, which allows {lower}..{upper} µ$: {off}")));
            }
        }
    }
}
