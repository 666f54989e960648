using Gateway.Core.Enforcement;
using Gateway.Operator.Ledger;
using Gateway.Operator.Verify;
using Gateway.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Tests.Verify;

/// <summary>verify while money moves: requests settling, released and in flight, the ledger writer persisting with
/// no linger (the most interleavings), must never report a violation the system does not have.</summary>
public sealed class ConservationCheckerLiveTests : IAsyncLifetime
{
    private VerifyHarness _h = null!;

    public async Task InitializeAsync() => _h = await VerifyHarness.CreateAsync();

    public async Task DisposeAsync() => await _h.DisposeAsync();

    [Fact]
    public async Task Runs_during_steady_traffic_are_clean_and_a_run_after_it_is_exact()
    {
        var writer = new LedgerWriter(_h.F.Redis, NpgsqlDataSource.Create(_h.F.Database.ConnectionString), _h.F.Keys,
            Options.Create(new LedgerOptions { ConsumerName = "live", Block = TimeSpan.FromMilliseconds(50), Linger = TimeSpan.Zero, BatchSize = 50 }),
            NullLogger<LedgerWriter>.Instance);
        await writer.StartAsync(CancellationToken.None);
        using var stop = new CancellationTokenSource();
        var sent = 0;
        async Task TrafficAsync(int lane)
        {
            // Bounded, so a slow machine is not flooded while the runs take their time.
            for (var i = 0; !stop.IsCancellationRequested && i < 5_000; i++)
            {
                var id = $"live-{lane}-{i}";
                var r = await _h.AdmitAsync(id, 50_000);
                if (i % 5 == 4) await _h.Enforcer.ReleaseAsync(r);
                else await _h.Enforcer.SettleAsync(new Settlement { Reservation = r, Usage = _h.Usage(id, 0.000001m * (i % 7 + 1)) });
                Interlocked.Increment(ref sent);
            }
        }
        var lanes = Enumerable.Range(0, 3).Select(l => Task.Run(() => TrafficAsync(l))).ToArray();
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref sent) > 50), "traffic to flow");
            for (var run = 0; run < 6; run++)
            {
                using var stdout = new StringWriter();
                using var stderr = new StringWriter();
                var code = await VerifyCommand.RunAsync(["verify", "--settle-wait", "20s", .. _h.ConfigArgs()], stdout, stderr);
                Assert.True(code == VerifyCommand.ExitClean, $"run {run} during traffic exited {code}:\n{stdout}{stderr}");
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(lanes);
        }
        try
        {
            // Quiet again: once the writer has drained the stream, one attempt is exact.
            await Eventually.TrueAsync(async () => (await _h.VerifyAsync()).Count("pendingUsageEvents") == 0, "the stream to drain");
            var quiet = await _h.VerifyAsync();
            Assert.True(quiet.ExitCode == 0, quiet.ToString());
            Assert.Equal(1, quiet.Json.GetProperty("attempts").GetInt32());
            Assert.Equal(0, quiet.Count("openReservations"));
        }
        finally { await writer.StopAsync(CancellationToken.None); }
    }
}

