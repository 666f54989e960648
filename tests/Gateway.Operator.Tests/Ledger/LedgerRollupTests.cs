using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Core.Usage;
using Gateway.Operator.Ledger;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.Tests.Ledger;

/// <summary>The daily roll-ups the ledger writer maintains always equal the sums of the rows they roll up.</summary>
public sealed class LedgerRollupTests : IAsyncLifetime
{
    private OperatorFixture _f = null!;
    private Guid _userId;
    private Guid _keyId;
    private NpgsqlDataSource _dataSource = null!;

    public async Task InitializeAsync()
    {
        _f = await OperatorFixture.CreateAsync();
        _f.CopyRepositorySamples();
        await _f.Driver.PassAsync(CancellationToken.None);
        await using var db = _f.Db();
        _userId = (await db.Users.SingleAsync()).Id;
        _keyId = (await db.ApiKeys.SingleAsync()).Id;
        _dataSource = NpgsqlDataSource.Create(_f.Database.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await _dataSource.DisposeAsync();
        await _f.DisposeAsync();
    }

    private LedgerWriter Writer() => new(_f.Redis, _dataSource, _f.Keys,
        Options.Create(new LedgerOptions()), NullLogger<LedgerWriter>.Instance);

    private static readonly string[] Models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4"];
    private static readonly string[] Upstreams = ["default/mock", "default/other"];
    private static readonly int[] Statuses = [200, 200, 200, 200, 429, 499, 502, 0];

    private UsageEvent RandomEvent(Random rng, int i)
    {
        // A third of the events belong to a user and key the database does not know (no consume entry, null-safe roll-up).
        var known = rng.Next(3) > 0;
        var status = Statuses[rng.Next(Statuses.Length)];
        return new UsageEvent
        {
            RequestId = "r-" + i.ToString(System.Globalization.CultureInfo.InvariantCulture),
            KeyId = known ? _keyId.ToString() : (rng.Next(2) == 0 ? "" : Guid.NewGuid().ToString()),
            UserId = known ? _userId.ToString() : "",
            Upstream = Upstreams[rng.Next(Upstreams.Length)],
            Model = Models[rng.Next(Models.Length)],
            Route = "/v1/chat/completions",
            Tokens = new TokenCounts(rng.Next(1, 5000), rng.Next(0, 100), rng.Next(0, 50), rng.Next(0, 2000)),
            Cost = Math.Round((decimal)rng.NextDouble() * 0.05m, 8),
            PriceVersion = "2026-11-01",
            // Spread over three UTC days, close to midnight boundaries too.
            StartedAt = new DateTimeOffset(2026, 12, 5, 23, 59, 0, TimeSpan.Zero).AddSeconds(rng.Next(-90_000, 90_000)),
            DurationMs = rng.Next(1, 3000),
            Status = status,
            Streamed = rng.Next(2) == 0,
            ClientIp = "203.0.113." + rng.Next(1, 255).ToString(System.Globalization.CultureInfo.InvariantCulture),
            ErrorCode = status is >= 200 and < 400 ? "" : UsageErrorCodes.ForStatus(status),
        };
    }

    private static StreamEntry Entry(UsageEvent e, ref int id)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        var fields = e.ToStreamFields();
        for (var i = 0; i < fields.Count; i += 2) map[fields[i].ToString()!] = fields[i + 1].ToString()!;
        return new StreamEntry("1-" + (id++).ToString(System.Globalization.CultureInfo.InvariantCulture), map);
    }

    [Fact]
    public async Task Rollups_equal_the_sums_of_usage_log_and_ledger_after_many_batches_with_redelivery()
    {
        var rng = new Random(42);
        var events = Enumerable.Range(0, 1500).Select(i => RandomEvent(rng, i)).ToList();
        var writer = Writer();
        var id = 0;
        var next = 0;
        var inserted = 0;
        while (next < events.Count)
        {
            var size = rng.Next(1, 120);
            var batch = new List<StreamEntry>();
            for (var i = 0; i < size && next < events.Count; i++) batch.Add(Entry(events[next++], ref id));
            // Redelivery: events already persisted (earlier batches) and duplicates inside the same batch.
            for (var d = rng.Next(0, 10); d > 0; d--) batch.Add(Entry(events[rng.Next(next)], ref id));
            inserted += await writer.PersistAsync(batch, CancellationToken.None);
        }
        // A whole replay of everything changes nothing.
        for (var i = 0; i < events.Count; i += 500)
        {
            var replay = new List<StreamEntry>();
            foreach (var e in events.Skip(i).Take(500)) replay.Add(Entry(e, ref id));
            Assert.Equal(0, await writer.PersistAsync(replay, CancellationToken.None));
        }
        Assert.Equal(events.Count, inserted);
        await AssertRollupsMatchAsync(expectedRows: events.Count);
    }

    [Fact]
    public async Task Concurrent_writers_with_overlapping_batches_count_each_request_once()
    {
        var rng = new Random(7);
        var events = Enumerable.Range(0, 800).Select(i => RandomEvent(rng, i)).ToList();
        var id = 0;
        // Two writers (e.g. a claimed entry re-read by another consumer) get overlapping batches at once.
        var batches = new List<List<StreamEntry>>();
        for (var i = 0; i < events.Count; i += 50)
        {
            var b = new List<StreamEntry>();
            foreach (var e in events.Skip(Math.Max(0, i - 25)).Take(75)) b.Add(Entry(e, ref id));
            batches.Add(b);
        }
        var a = Writer();
        var b2 = Writer();
        var tasks = new List<Task<int>>();
        for (var i = 0; i < batches.Count; i++)
        {
            tasks.Add(a.PersistAsync(batches[i], CancellationToken.None));
            tasks.Add(b2.PersistAsync(batches[batches.Count - 1 - i], CancellationToken.None));
        }
        var counts = await Task.WhenAll(tasks);
        Assert.Equal(events.Count, counts.Sum());
        await AssertRollupsMatchAsync(expectedRows: events.Count);
    }

    [Fact]
    public async Task Client_ip_and_error_code_reach_usage_log()
    {
        var rng = new Random(1);
        var ok = RandomEvent(rng, 1) with { Status = 200, ErrorCode = "", ClientIp = "2001:db8::7" };
        var failed = RandomEvent(rng, 2) with { Status = 429, ErrorCode = "rate_limit_exceeded", ClientIp = "" };
        var id = 0;
        await Writer().PersistAsync([Entry(ok, ref id), Entry(failed, ref id)], CancellationToken.None);
        await using var db = _f.Db();
        var rows = await db.UsageLog.OrderBy(r => r.RequestId).ToListAsync();
        Assert.Equal(("2001:db8::7", (string?)null), (rows[0].ClientIp, rows[0].ErrorCode));
        Assert.Equal(((string?)null, "rate_limit_exceeded"), (rows[1].ClientIp, rows[1].ErrorCode));
    }

    [Fact]
    public async Task Migration_backfills_rollups_from_existing_rows()
    {
        // A database at the schema before M0003 with usage and consume rows, then migrated.
        await using var old = await TestDatabase.CreateAsync();
        await using (var db = StorageServiceCollectionExtensions.CreateContext(old.ConnectionString))
        {
            await db.GetService<IMigrator>().MigrateAsync("20261121000001_Initial");
            await db.Database.ExecuteSqlRawAsync("""
                INSERT INTO users (id, namespace, name, login, email) VALUES ('00000000-0000-0000-0000-0000000000b1', 'default', 'u', 'u', 'u@example.com');
                INSERT INTO usage_log (request_id, user_id, model, upstream, cost, started_at, status, streamed, input_tokens, output_tokens)
                SELECT 'b-' || g, '00000000-0000-0000-0000-0000000000b1', 'm' || (g % 3), 'up', g * 0.001, timestamptz '2026-12-01 00:00Z' + g * interval '37 minutes',
                       CASE WHEN g % 5 = 0 THEN 500 ELSE 200 END, g % 2 = 0, g, 2 * g
                FROM generate_series(1, 300) g;
                INSERT INTO ledger_entries (user_id, kind, amount, request_id, created_at)
                SELECT user_id, 'consume', -cost, request_id, started_at FROM usage_log;
                """);
        }
        await StorageServiceCollectionExtensions.MigrateAsync(old.ConnectionString);
        await AssertRollupsMatchAsync(expectedRows: 300, old.ConnectionString, unknownUsers: false);
    }

    /// <summary>Compares every roll-up row with the same sums computed from the detail rows, both ways.</summary>
    private async Task AssertRollupsMatchAsync(int expectedRows, string? connectionString = null, bool unknownUsers = true)
    {
        await using var conn = new NpgsqlConnection(connectionString ?? _f.Database.ConnectionString);
        await conn.OpenAsync();
        async Task<long> Scalar(string sql)
        {
            await using var cmd = new NpgsqlCommand(sql, conn);
            return Convert.ToInt64(await cmd.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Equal(expectedRows, await Scalar("SELECT count(*) FROM usage_log"));
        const string fromLog = """
            SELECT user_id, (started_at AT TIME ZONE 'UTC')::date AS day, api_key_id, model, upstream, streamed,
                NOT (status BETWEEN 200 AND 399) AS failed, count(*) AS requests,
                count(*) FILTER (WHERE NOT (status BETWEEN 200 AND 399)) AS errors,
                sum(input_tokens) AS i, sum(cached_input_tokens) AS c, sum(cache_write_tokens) AS w, sum(output_tokens) AS o, sum(cost) AS cost
            FROM usage_log GROUP BY 1, 2, 3, 4, 5, 6, 7
            """;
        const string fromDaily = """
            SELECT user_id, day, api_key_id, model, upstream, streamed, failed, requests, errors,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost FROM usage_daily
            """;
        Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({fromLog}) EXCEPT ({fromDaily})) x"));
        Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({fromDaily}) EXCEPT ({fromLog})) x"));
        Assert.True(await Scalar("SELECT count(*) FROM usage_daily") > 1);
        Assert.True(await Scalar("SELECT count(*) FROM usage_daily WHERE failed AND streamed") > 0);

        const string consumeFromLedger = """
            SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, sum(amount), count(*), max(created_at)
            FROM ledger_entries WHERE kind = 'consume' GROUP BY 1, 2
            """;
        const string consumeDaily = "SELECT user_id, day, amount, entries, last_at FROM ledger_daily";
        Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({consumeFromLedger}) EXCEPT ({consumeDaily})) x"));
        Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({consumeDaily}) EXCEPT ({consumeFromLedger})) x"));
        Assert.True(await Scalar("SELECT count(*) FROM ledger_daily") > 1);

        // The admin overview's global roll-ups (M0006): every user's usage by day and model, and by day and user.
        foreach (var (dimension, table) in new[] { ("model", "usage_daily_by_model"), ("user_id", "usage_daily_by_user") })
        {
            var fromUsage = $"""
                SELECT (started_at AT TIME ZONE 'UTC')::date, {dimension}, count(*),
                    sum(input_tokens + cached_input_tokens + cache_write_tokens + output_tokens), sum(cost)
                FROM usage_log GROUP BY 1, 2
                """;
            var fromRollup = $"SELECT day, {dimension}, requests, tokens, cost FROM {table}";
            Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({fromUsage}) EXCEPT ({fromRollup})) x"));
            Assert.Equal(0, await Scalar($"SELECT count(*) FROM (({fromRollup}) EXCEPT ({fromUsage})) x"));
            Assert.True(await Scalar($"SELECT count(*) FROM {table}") > 1);
        }
        if (unknownUsers) Assert.True(await Scalar("SELECT count(*) FROM usage_daily_by_user WHERE user_id IS NULL") > 0);
    }
}
