using Gateway.Testing;
using Gateway.Core.Usage;
using Gateway.Operator.Verify;
using Npgsql;

namespace Gateway.Operator.Tests.Verify;

/// <summary>The interleavings a live system can produce around verify's Redis snapshot, made to happen exactly there.</summary>
public sealed class ConservationCheckerRaceTests : IAsyncLifetime
{
    private VerifyHarness _h = null!;

    public async Task InitializeAsync() => _h = await VerifyHarness.CreateAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    private ConservationChecker Checker(TimeSpan settleWait, Func<int, Task>? afterSnapshot = null, Func<int, Task>? beforeLedgerRead = null) =>
        new(NpgsqlDataSource.Create(_h.F.Database.ConnectionString), _h.F.Redis, _h.F.Keys, new VerifyOptions { SettleWait = settleWait })
        {
            AfterRedisSnapshot = afterSnapshot,
            BeforeLedgerRead = beforeLedgerRead,
        };

    /// <summary>Settles a request in Redis and persists its usage row and consume entry as the ledger writer would.</summary>
    private async Task SettleAndPersistAsync(string id, decimal cost)
    {
        await _h.RequestAsync(id, cost);
        await UsageLedgerBatch.WriteAsync(NpgsqlDataSource.Create(_h.F.Database.ConnectionString), [_h.Usage(id, cost)]);
        await ShardedRedis.DeleteAsync(_h.F.Redis, _h.F.Keys.UsageStream);
    }

    [Fact]
    public async Task Usage_settled_and_persisted_after_the_snapshot_is_left_out_on_both_sides()
    {
        // Redis was read without it; PostgreSQL will have its row and consume entry.
        var checker = Checker(TimeSpan.Zero, beforeLedgerRead: attempt => attempt == 1 ? SettleAndPersistAsync("after-1", 0.000042m) : Task.CompletedTask);

        var report = await checker.RunAsync();

        Assert.True(report.Clean, string.Join("; ", report.Violations.Select(v => v.Detail)));
        Assert.Equal(1, report.Attempts);
        Assert.Equal(1, report.Counts.ConsumeEntries);
        Assert.Equal(0, report.Counts.RoundingAllowanceMicros);
    }

    [Fact]
    public async Task Usage_persisted_while_the_snapshot_was_taken_makes_the_user_indeterminate_and_the_next_attempt_decides()
    {
        // Persisted before t1 and gone from the stream: settled before or after the snapshot cannot be told apart.
        var checker = Checker(TimeSpan.FromSeconds(30), afterSnapshot: attempt => attempt == 1 ? SettleAndPersistAsync("during-1", 0.000042m) : Task.CompletedTask);

        var report = await checker.RunAsync();

        Assert.True(report.Clean, string.Join("; ", report.Violations.Select(v => v.Detail)));
        Assert.Equal(2, report.Attempts);

        var once = Checker(TimeSpan.Zero, afterSnapshot: attempt => SettleAndPersistAsync($"during-once-{attempt}", 0.000042m));
        var undecided = await once.RunAsync();
        Assert.Equal(ViolationKinds.Indeterminate, Assert.Single(undecided.Violations).Kind);
    }
}
