using Gateway.Core.Enforcement;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Operator.Verify;
using Gateway.Testing;
using Npgsql;

namespace Gateway.Operator.Tests.Verify;

/// <summary>verify on a quiet system: clean and exact after every way money moves, and each violation kind found when injected.</summary>
public sealed class ConservationCheckerTests : IAsyncLifetime
{
    private VerifyHarness _h = null!;

    public async Task InitializeAsync() => _h = await VerifyHarness.CreateAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    /// <summary>Three charged requests with sub-micro-dollar fractions and a failed one (cost 0), persisted.</summary>
    private async Task PersistedTrafficAsync()
    {
        await _h.RequestAsync("paid-1", 0.00000155m);
        await _h.RequestAsync("paid-2", 0.00001234m);
        await _h.RequestAsync("paid-3", 0.0001m);
        await _h.RequestAsync("failed-1", 0m, status: 500);
        await _h.PersistAsync(rows: 4);
    }

    [Fact]
    public async Task Clean_after_persisted_pending_open_released_and_failed_requests_with_counts_of_each()
    {
        await PersistedTrafficAsync();
        // Usage still in the stream (the ledger writer is not running), one request in flight, one released.
        await _h.RequestAsync("pending-1", 0.00000333m);
        await _h.AdmitAsync("open-1", 5_000);
        var released = await _h.AdmitAsync("released-1", 7_000);
        Assert.Equal(SettleOutcome.Settled, await _h.Enforcer.ReleaseAsync(released));

        var run = await _h.VerifyAsync();

        Assert.True(run.ExitCode == VerifyCommand.ExitClean, run.ToString());
        Assert.True(run.Json.GetProperty("clean").GetBoolean());
        Assert.Equal(1, run.Count("users"));
        Assert.Equal(1, run.Count("usersChecked"));
        Assert.Equal(1, run.Count("grantEntries"));
        Assert.Equal(3, run.Count("consumeEntries"));
        Assert.Equal(4, run.Count("usageRows"));
        Assert.Equal(3, run.Count("usageRowsWithCost"));
        Assert.Equal(1, run.Count("openReservations"));
        Assert.Equal(5_000, run.Count("reservedMicros"));
        Assert.Equal(1, run.Count("streamEntries"));
        Assert.Equal(1, run.Count("pendingUsageEvents"));
        Assert.Equal(4, run.Count("pendingMicros"));
        Assert.Equal(0, run.Count("expiredReservations"));
        // 10 USD − (2 + 13 + 100) µ$ (each cost rounded up) − 4 pending − 5,000 reserved; the release refunded its 7,000.
        Assert.Equal(10_000_000 - 115 - 4 - 5_000, run.Count("redisBalanceMicros"));
        // ⌊10 USD − 113.89 µ$⌋ = 9,999,886 µ$ vs Σ⌊entry⌋ = 10,000,000 − 2 − 13 − 100: the fractions add up to 1 µ$.
        Assert.Equal(1, run.Count("roundingAllowanceMicros"));
    }

    [Fact]
    public async Task A_quota_lease_counts_what_it_holds_and_one_that_outlived_its_expiry_is_reported()
    {
        await PersistedTrafficAsync();
        var grant = await _h.Enforcer.GrantLeaseAsync(new LeaseRequest
        {
            LeaseId = "lease-1", Key = _h.Key, User = _h.User, Owner = "test", Money = 80_000, Requests = 8, Tokens = 800,
            Ttl = TimeSpan.FromSeconds(2),
        });
        var lease = Assert.IsType<QuotaLease>(grant.Lease);
        // One leased request settled (its usage is in the stream), one in flight under the lease.
        var flush = new LeaseFlush { Lease = lease };
        flush.Settlements.Add(new LeasedSettlement(_h.Usage("leased-1", 0.003m), 3_000, AdmissionFlushed: false));
        flush.Admissions.Add(new LeasedAdmission { RequestId = "leased-2", ReservedMicros = 9_000, StartedAt = DateTimeOffset.UtcNow });
        await _h.Enforcer.FlushLeasedAsync([flush]);

        var run = await _h.VerifyAsync();
        Assert.True(run.ExitCode == VerifyCommand.ExitClean, run.ToString());
        Assert.Equal(1, run.Count("openLeases"));
        Assert.Equal(77_000, run.Count("leasedMicros"));
        Assert.Equal(1, run.Count("pendingUsageEvents"));

        // A lease that holds more than it took from the balance breaks the identity.
        await _h.RedisAsync("HINCRBY", _h.F.Keys.Lease(_h.UserId, "lease-1"), "money", 1_000);
        var over = await _h.VerifyAsync("--lease-grace", "1h", "--settle-wait", "0s");
        Assert.Equal(VerifyCommand.ExitViolations, over.ExitCode);
        Assert.Single(over.Violations(ViolationKinds.BalanceMismatch));
        await _h.RedisAsync("HINCRBY", _h.F.Keys.Lease(_h.UserId, "lease-1"), "money", -1_000);

        // Nobody returned or reclaimed it: past its expiry and the grace, it is reported (and still counted).
        await Eventually.TrueAsync(async () => (await _h.VerifyAsync("--lease-grace", "0s")).Kinds().Contains(ViolationKinds.ExpiredLease),
            "the lease to be reported as expired");
        var late = await _h.VerifyAsync("--lease-grace", "0s");
        Assert.Equal([ViolationKinds.ExpiredLease], late.Kinds());
    }

    [Fact]
    public async Task Usage_persisted_but_still_in_the_stream_counts_once()
    {
        await _h.RequestAsync("acked-late", 0.0002m);
        // What the ledger writer does between its commit and its XACK/XDEL: the row exists, the entry is still there.
        await UsageLedgerBatch.WriteAsync(NpgsqlDataSource.Create(_h.F.Database.ConnectionString), [_h.Usage("acked-late", 0.0002m)]);

        var run = await _h.VerifyAsync();

        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Equal(1, run.Count("persistedAwaitingAck"));
        Assert.Equal(0, run.Count("pendingUsageEvents"));
    }

    [Fact]
    public async Task A_deleted_consume_entry_is_reported_with_its_request_and_the_users_balance()
    {
        await PersistedTrafficAsync();
        // The ledger is append-only; a replica-role session bypasses its trigger, as a bad manual fix would.
        await _h.SqlAsync("SET session_replication_role = replica; DELETE FROM ledger_entries WHERE request_id = 'paid-2'");

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        var missing = Assert.Single(run.Violations(ViolationKinds.UsageWithoutConsume));
        Assert.Equal("paid-2", missing.GetProperty("requestId").GetString());
        var balance = Assert.Single(run.Violations(ViolationKinds.BalanceMismatch));
        Assert.Equal(_h.UserId, balance.GetProperty("userId").GetString());
        Assert.Equal("default/demo", balance.GetProperty("user").GetString());
    }

    [Fact]
    public async Task A_request_id_recorded_twice_in_usage_log_is_reported()
    {
        await PersistedTrafficAsync();
        // The unique constraint forbids it today; drop it in this throw-away database to prove the check works.
        await _h.SqlAsync("""
            ALTER TABLE usage_log DROP CONSTRAINT usage_log_request_id_key;
            INSERT INTO usage_log (request_id, user_id, cost, started_at) SELECT request_id, user_id, cost, started_at FROM usage_log WHERE request_id = 'paid-3';
            """);

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        var dup = Assert.Single(run.Violations(ViolationKinds.DuplicateRequestId));
        Assert.Equal("paid-3", dup.GetProperty("requestId").GetString());
        Assert.Equal([ViolationKinds.DuplicateRequestId], run.Kinds());
    }

    [Fact]
    public async Task A_consume_entry_without_a_usage_row_is_reported()
    {
        await PersistedTrafficAsync();
        await _h.SqlAsync($"INSERT INTO ledger_entries (user_id, kind, amount, request_id) VALUES ('{_h.UserId}', 'consume', -0.000005, 'ghost-1')");

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        Assert.Equal("ghost-1", Assert.Single(run.Violations(ViolationKinds.ConsumeWithoutUsage)).GetProperty("requestId").GetString());
        // The ledger now holds 5 µ$ less than Redis accounts for.
        Assert.Contains("µ$ over", Assert.Single(run.Violations(ViolationKinds.BalanceMismatch)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_redis_balance_is_allowed_exactly_the_rounding_and_one_micro_dollar_beyond_either_edge_is_reported()
    {
        await PersistedTrafficAsync();
        var clean = await _h.VerifyAsync();
        Assert.True(clean.ExitCode == 0, clean.ToString());
        var allowance = clean.Count("roundingAllowanceMicros");
        Assert.Equal(1, allowance);
        var balanceKey = _h.F.Keys.Balance(_h.UserId);

        // Up to the top of the rounding allowance: still clean. One more micro-dollar: free money, reported.
        await _h.RedisAsync("INCRBY", balanceKey, allowance);
        Assert.Equal(0, (await _h.VerifyAsync()).ExitCode);
        // Credited entry by entry, as here, a balance sits exactly on the lower edge: --strict holds it there.
        var strict = await _h.VerifyAsync("--strict");
        Assert.Contains("1 µ$ over the per-entry rounding", Assert.Single(strict.Violations(ViolationKinds.BalanceMismatch)).GetProperty("detail").GetString(), StringComparison.Ordinal);
        await _h.RedisAsync("INCRBY", balanceKey, 1);
        var over = await _h.VerifyAsync();
        Assert.Equal(VerifyCommand.ExitViolations, over.ExitCode);
        Assert.Contains("1 µ$ over", Assert.Single(over.Violations(ViolationKinds.BalanceMismatch)).GetProperty("detail").GetString(), StringComparison.Ordinal);

        // Back to the bottom edge (every cost rounded up, as settlement does): clean. One less: reported.
        await _h.RedisAsync("DECRBY", balanceKey, allowance + 1);
        Assert.Equal(0, (await _h.VerifyAsync()).ExitCode);
        Assert.Equal(0, (await _h.VerifyAsync("--strict")).ExitCode);
        await _h.RedisAsync("DECRBY", balanceKey, 1);
        var under = await _h.VerifyAsync();
        Assert.Equal(VerifyCommand.ExitViolations, under.ExitCode);
        Assert.Contains("1 µ$ short", Assert.Single(under.Violations(ViolationKinds.BalanceMismatch)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_reservation_left_past_its_lease_is_reported_and_still_counted_in_the_balance()
    {
        // A proxy admitted it an hour ago with a one-minute lease and died; no sweeper has run since.
        var past = new Enforcer(_h.F.Redis, _h.F.Keys, new AdvanceableTimeProvider(DateTimeOffset.UtcNow.AddHours(-1)));
        await _h.AdmitAsync("orphan-1", 12_345, TimeSpan.FromMinutes(1), past);
        await _h.AdmitAsync("live-1", 1_000, TimeSpan.FromMinutes(15));

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        Assert.Equal("orphan-1", Assert.Single(run.Violations(ViolationKinds.ExpiredReservation)).GetProperty("requestId").GetString());
        Assert.Equal([ViolationKinds.ExpiredReservation], run.Kinds());
        Assert.Equal(2, run.Count("openReservations"));
        // With a grace longer than its age it is tolerated (a sweeper may simply be behind).
        Assert.Equal(0, (await _h.VerifyAsync("--lease-grace", "2h")).ExitCode);
    }

    [Fact]
    public async Task A_grant_the_redis_balance_was_not_credited_with_is_reported()
    {
        await _h.SqlAsync($"INSERT INTO ledger_entries (user_id, kind, amount, grant_id) VALUES ('{_h.UserId}', 'grant', 5, 'bonus-1')");

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        Assert.Contains("bonus-1", Assert.Single(run.Violations(ViolationKinds.GrantNotCredited)).GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_charged_twice_in_the_usage_stream_is_reported()
    {
        await _h.RequestAsync("twice-1", 0.00001m);
        // A second usage event for the same request, as a broken settlement path would write it.
        await _h.F.Redis.StreamAddAsync(_h.F.Keys.UsageStream(0), _h.Usage("twice-1", 0.00001m).ToStreamFields());
        await _h.RedisAsync("DECRBY", _h.F.Keys.Balance(_h.UserId), 10);

        var run = await _h.VerifyAsync();

        Assert.Equal(VerifyCommand.ExitViolations, run.ExitCode);
        Assert.Equal("twice-1", Assert.Single(run.Violations(ViolationKinds.DuplicateRequestId)).GetProperty("requestId").GetString());
    }
}
