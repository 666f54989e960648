using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Storage;
using Gateway.Operator.Ledger;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Tests.Ledger;

public sealed class ReservationSweeperTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    [Fact]
    public async Task An_orphaned_reservation_is_charged_once_at_its_reserved_amount_and_a_late_settlement_is_a_no_op()
    {
        await using var db = _f.Db();
        var user = await db.Users.SingleAsync();
        var keyHash = (await db.ApiKeyVersions.SingleAsync()).KeyHash.Trim();
        var keyProjection = JsonSerializer.Deserialize<KeyProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.Key(keyHash)])).AsString()!, TokenGateJson.Options)!;
        var userProjection = JsonSerializer.Deserialize<UserProjection>((await _f.Redis.ExecuteAsync("GET", [_f.Keys.User(user.Id.ToString())])).AsString()!, TokenGateJson.Options)!;
        var before = await _f.Projection.GetBalanceMicrosAsync(user.Id.ToString(), CancellationToken.None);

        // A proxy admits a request and dies: its lease runs out with no settlement.
        var enforcer = new Enforcer(_f.Redis, _f.Keys);
        var admitted = await enforcer.AdmitAsync(new AdmissionRequest
        {
            RequestId = "orphan-1",
            Key = keyProjection,
            User = userProjection,
            ReservedMicros = 12_345,
            EstimatedInputTokens = 100,
            MaxOutputTokens = 50,
            Model = "gpt-4o-mini",
            Lease = TimeSpan.FromMilliseconds(50),
        });
        Assert.True(admitted.Allowed);

        var writer = new LedgerWriter(_f.Redis, NpgsqlDataSource.Create(_f.Database.ConnectionString), _f.Keys,
            Options.Create(new LedgerOptions { ConsumerName = "sweep-test", Block = TimeSpan.FromMilliseconds(100) }), NullLogger<LedgerWriter>.Instance);
        var sweeper = new ReservationSweeper(enforcer, TimeProvider.System, NullLogger<ReservationSweeper>.Instance);
        await writer.StartAsync(CancellationToken.None);
        await sweeper.StartAsync(CancellationToken.None);
        try
        {
            var row = await Eventually.ReturnsAsync(async () =>
            {
                await using var d = _f.Db();
                return await d.UsageLog.SingleOrDefaultAsync(u => u.RequestId == "orphan-1");
            }, "the orphan to be charged");
            Assert.Equal(0.012345m, row.Cost);
            Assert.True(row.Estimated);
            Assert.Equal(0, row.Status);
            var consume = await db.LedgerEntries.SingleAsync(e => e.RequestId == "orphan-1");
            Assert.Equal(-0.012345m, consume.Amount);
        }
        finally
        {
            await sweeper.StopAsync(CancellationToken.None);
            await writer.StopAsync(CancellationToken.None);
        }

        // The live balance lost exactly the reservation, and the late settlement changes nothing.
        Assert.Equal(before - 12_345, await _f.Projection.GetBalanceMicrosAsync(user.Id.ToString(), CancellationToken.None));
        var late = await enforcer.SettleAsync(new Settlement
        {
            Reservation = admitted.Reservation!,
            Usage = new Gateway.Core.Usage.UsageEvent { RequestId = "orphan-1", KeyId = keyProjection.KeyId, UserId = user.Id.ToString(), Cost = 0.000001m },
        });
        Assert.Equal(SettleOutcome.AlreadySettled, late);
        Assert.Equal(before - 12_345, await _f.Projection.GetBalanceMicrosAsync(user.Id.ToString(), CancellationToken.None));
    }
}
