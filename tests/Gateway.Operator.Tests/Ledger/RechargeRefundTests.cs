using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Operator.Ledger;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Tests.Ledger;

/// <summary>
/// Issue #12 (Redis flushed): a recharge (usage charged again by a replica's outbox after Redis lost its data) that the
/// ledger already had is given back to the balance by the ledger writer, exactly once per recharge; a recharge the
/// ledger did not have becomes the usage row and keeps its charge.
/// </summary>
public sealed class RechargeRefundTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private string _user = "";
    private string _key = "";
    private int _id;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        _user = (await db.Users.SingleAsync()).Id.ToString();
        _key = (await db.ApiKeys.SingleAsync()).Id.ToString();
    }

    public async Task DisposeAsync() => await _f.DisposeAsync();

    private LedgerWriter Writer() => new(_f.Redis, _f.DataSource, _f.Keys,
        Options.Create(new LedgerOptions()), NullLogger<LedgerWriter>.Instance, _f.Gate);

    private UsageEvent Use(string requestId, string rechargeId = "", long micros = 0) => new()
    {
        RequestId = requestId, KeyId = _key, KeyVersion = 1, UserId = _user, Upstream = "default/mock", Model = "gpt-4o-mini",
        Route = "/v1/chat/completions", Tokens = new TokenCounts(10, 0, 0, 10), Cost = 0.004m, PriceVersion = "test@1",
        StartedAt = DateTimeOffset.UtcNow, Status = 200, RechargeId = rechargeId, RechargeMicros = micros,
    };

    private StreamEntry Entry(UsageEvent e)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        var fields = e.ToStreamFields();
        for (var i = 0; i < fields.Count; i += 2) map[fields[i].ToString()!] = fields[i + 1].ToString()!;
        return new StreamEntry("1-" + (_id++).ToString(System.Globalization.CultureInfo.InvariantCulture), map);
    }

    private async Task<long> BalanceAsync() => (await _f.Projection.GetBalanceMicrosAsync(_user, CancellationToken.None))!.Value;

    private async Task<int> RowsAsync(string requestId)
    {
        await using var db = _f.Db();
        return await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM usage_log WHERE request_id = {requestId}").SingleAsync()
            + await db.Database.SqlQuery<int>($"SELECT count(*)::int AS \"Value\" FROM ledger_entries WHERE request_id = {requestId}").SingleAsync();
    }

    [Fact]
    public async Task A_recharge_the_ledger_already_had_is_refunded_once_and_a_new_one_keeps_its_charge()
    {
        var writer = Writer();
        Assert.Equal(1, await writer.PersistAsync([Entry(Use("r-1"))], CancellationToken.None));
        var balance = await BalanceAsync();

        // r-1 was recorded before the loss: its recharge (4,000 µ$ taken by the outbox) comes back.
        var duplicate = Entry(Use("r-1", new string('a', 32), 4_000));
        Assert.Equal(0, await writer.PersistAsync([duplicate], CancellationToken.None));
        Assert.Equal(balance + 4_000, await BalanceAsync());
        // The writer may read the same batch again (it died before acknowledging it): no second refund.
        Assert.Equal(0, await writer.PersistAsync([duplicate], CancellationToken.None));
        Assert.Equal(balance + 4_000, await BalanceAsync());
        Assert.Equal(2, await RowsAsync("r-1"));

        // r-2 was lost with Redis: its recharge is the usage row (and its consume entry) and keeps its charge.
        Assert.Equal(1, await writer.PersistAsync([Entry(Use("r-2", new string('b', 32), 4_000))], CancellationToken.None));
        Assert.Equal(balance + 4_000, await BalanceAsync());
        Assert.Equal(2, await RowsAsync("r-2"));

        // Two recharges of one lost request in one batch (two losses in a row): the first is the row, the second is refunded.
        Assert.Equal(1, await writer.PersistAsync([Entry(Use("r-3", new string('c', 32), 4_000)), Entry(Use("r-3", new string('d', 32), 4_000))],
            CancellationToken.None));
        Assert.Equal(balance + 8_000, await BalanceAsync());
        Assert.Equal(2, await RowsAsync("r-3"));
    }
}
