using System.Globalization;
using Gateway.Core.Storage;
using Gateway.Core.Usage;
using Gateway.Testing;
using Npgsql;

namespace Gateway.Portal.Tests.Usage;

/// <summary>
/// A throw-away database with two users, their keys, ledger entries and usage written exactly as the ledger
/// writer writes it (<see cref="UsageLedgerBatch"/>, in several batches with redelivered events).
/// </summary>
public sealed class UsageDataFixture : IAsyncLifetime
{
    public static readonly string[] Models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4", "odd,\"model\""];
    public static readonly string[] Upstreams = ["default/mock", "default/other"];

    public TestDatabase Database { get; private set; } = null!;
    public NpgsqlDataSource DataSource { get; private set; } = null!;
    public Guid Alice { get; } = Guid.NewGuid();
    public Guid Bob { get; } = Guid.NewGuid();
    public Guid AliceKey1 { get; } = Guid.NewGuid();
    public Guid AliceKey2 { get; } = Guid.NewGuid();
    public Guid BobKey { get; } = Guid.NewGuid();
    /// <summary>Every event written (each once), Alice's and Bob's.</summary>
    public List<UsageEvent> Events { get; } = [];
    public DateTimeOffset Now { get; } = DateTimeOffset.UtcNow;

    public async Task InitializeAsync()
    {
        Database = await TestDatabase.CreateAsync();
        await StorageServiceCollectionExtensions.MigrateAsync(Database.ConnectionString);
        DataSource = NpgsqlDataSource.Create(Database.ConnectionString);
        // Alice has a monthly budget in New York time: the period starts at a local midnight that is not UTC midnight.
        await ExecAsync($$$"""
            INSERT INTO users (id, namespace, name, login, email, spec) VALUES
              ('{{{Alice}}}', 'default', 'alice', 'alice', 'alice@example.com',
               '{"budget":{"amount":25,"period":"monthly","timezone":"America/New_York"},"limits":{"requestsPerDay":5000,"tokensPerDay":9000000,"requestsPerMinute":60}}'),
              ('{{{Bob}}}', 'default', 'bob', 'bob', 'bob@example.com', '{}');
            INSERT INTO api_keys (id, namespace, name, user_id, description, key_prefix) VALUES
              ('{{{AliceKey1}}}', 'default', 'alice-ci', '{{{Alice}}}', 'CI jobs', 'tg-abc1'),
              ('{{{AliceKey2}}}', 'default', 'alice-laptop', '{{{Alice}}}', NULL, 'tg-abc2'),
              ('{{{BobKey}}}', 'default', 'bob-key', '{{{Bob}}}', NULL, 'tg-bob1');
            INSERT INTO ledger_entries (user_id, kind, amount, grant_id, reason, created_at) VALUES
              ('{{{Alice}}}', 'grant', 100, 'welcome', 'Welcome credit', now() - interval '40 days'),
              ('{{{Alice}}}', 'grant', 50.5, 'topup-1', 'Top-up', now() - interval '10 days'),
              ('{{{Bob}}}', 'grant', 10, 'welcome', NULL, now() - interval '40 days');
            INSERT INTO ledger_entries (user_id, kind, amount, reason, created_at) VALUES
              ('{{{Alice}}}', 'refund', 0.12345678, 'Refund of a failed batch', now() - interval '3 days'),
              ('{{{Alice}}}', 'adjust', -1.5, 'Manual correction', now() - interval '2 days'),
              ('{{{Alice}}}', 'expire', -0.25, 'Expired grant remainder', now() - interval '1 day');
            """);

        var rng = new Random(1234);
        for (var i = 0; i < 1200; i++)
        {
            var alice = i % 6 != 0;
            var status = (i % 9) switch { 0 => 429, 1 => 502, 2 => 499, _ => 200 };
            Events.Add(new UsageEvent
            {
                RequestId = "req-" + i.ToString("D5", CultureInfo.InvariantCulture),
                KeyId = (alice ? (i % 3 == 0 ? AliceKey2 : AliceKey1) : BobKey).ToString(),
                KeyVersion = 1,
                UserId = (alice ? Alice : Bob).ToString(),
                Upstream = Upstreams[rng.Next(Upstreams.Length)],
                Model = Models[rng.Next(Models.Length)],
                Route = "/v1/chat/completions",
                Tokens = new TokenCounts(rng.Next(1, 4000), rng.Next(0, 300), rng.Next(0, 100), rng.Next(0, 1500)),
                Cost = Math.Round((decimal)rng.NextDouble() * 0.02m, 8),
                PriceVersion = "2026-11-01",
                // Spread over the last 40 days, several rows sharing a timestamp (the keyset tie-break).
                StartedAt = Now.AddMinutes(-rng.Next(0, 40 * 24 * 60)).AddSeconds(-(i % 7 == 0 ? 0 : rng.Next(60))),
                DurationMs = rng.Next(5, 5000),
                TimeToFirstByteMs = rng.Next(2) == 0 ? null : rng.Next(1, 500),
                Status = status,
                Streamed = rng.Next(2) == 0,
                ClientIp = i % 5 == 0 ? "" : "198.51.100." + (i % 250).ToString(CultureInfo.InvariantCulture),
                ErrorCode = status == 200 ? "" : UsageErrorCodes.ForStatus(status),
            });
        }
        for (var i = 0; i < Events.Count; i += 100)
        {
            var batch = Events.Skip(i).Take(100).ToList();
            if (i > 0) batch.AddRange(Events.Skip(i - 30).Take(30)); // redelivered
            await UsageLedgerBatch.WriteAsync(DataSource, batch);
        }
    }

    public async Task ExecAsync(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var cmd = DataSource.CreateCommand(sql);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    public async Task DisposeAsync()
    {
        await DataSource.DisposeAsync();
        await Database.DisposeAsync();
    }
}
