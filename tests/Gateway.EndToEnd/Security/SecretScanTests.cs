using Gateway.Core.Redis;
using Gateway.Testing;
using Npgsql;

namespace Gateway.EndToEnd.Security;

/// <summary>The scanner behind the secrets tests finds a planted secret wherever it hides, so a clean scan means something.</summary>
public sealed class SecretScanTests
{
    private const string Planted = "planted-secret-0123456789";

    [Fact]
    public async Task Finds_a_secret_in_every_Redis_type_and_in_text_and_bytea_columns_and_nothing_else()
    {
        var prefix = TestEnvironment.UniqueRedisPrefix();
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        await using var db = await TestDatabase.CreateAsync();
        try
        {
            await redis.ExecuteAsync("SET", [prefix + "string", "x" + Planted]);
            await redis.ExecuteAsync("HSET", [prefix + "hash", "field", Planted]);
            await redis.ExecuteAsync("RPUSH", [prefix + "list", "a", Planted]);
            await redis.ExecuteAsync("SADD", [prefix + "set", Planted]);
            await redis.ExecuteAsync("ZADD", [prefix + "zset", 1, Planted]);
            await redis.ExecuteAsync("XADD", [prefix + "stream", "*", "body", Planted]);
            await redis.ExecuteAsync("SET", [prefix + "key-" + Planted, "v"]);
            await redis.ExecuteAsync("SET", [prefix + "clean", "nothing to see"]);
            await using (var connection = new NpgsqlConnection(db.ConnectionString))
            {
                await connection.OpenAsync();
                await using var create = new NpgsqlCommand(
                    "CREATE TABLE notes (id int, body text, blob bytea); INSERT INTO notes VALUES (1, @s, NULL), (2, NULL, @b), (3, 'clean', NULL)", connection);
                create.Parameters.AddWithValue("s", "note: " + Planted);
                create.Parameters.AddWithValue("b", System.Text.Encoding.UTF8.GetBytes(Planted));
                await create.ExecuteNonQueryAsync();
            }

            var scan = new SecretScan(new Dictionary<string, string> { ["planted"] = Planted, ["absent"] = "absent-secret-9876543210" });
            Assert.Equal(8, await scan.RedisAsync(redis, prefix));
            Assert.Equal(3, await scan.PostgresAsync(db.ConnectionString));
            Assert.Equal(2, scan.Texts("log", ["fine", "a line with " + Planted]));

            var where = scan.Findings.Select(f => f.Where).ToList();
            Assert.All(scan.Findings, f => Assert.Equal("planted", f.Secret));
            foreach (var type in new[] { "string", "hash", "list", "set", "zset", "stream" })
                Assert.Contains(where, w => w.StartsWith($"Redis {type} {prefix}{type}", StringComparison.Ordinal));
            Assert.Contains(where, w => w.StartsWith("Redis key name " + prefix + "key-", StringComparison.Ordinal));
            Assert.Contains("PostgreSQL table notes", where);
            Assert.Contains("PostgreSQL table notes (hex)", where);
            Assert.Contains("log #2", where);
            Assert.DoesNotContain(where, w => w.Contains("clean", StringComparison.Ordinal));
            Assert.Throws<ArgumentException>(() => new SecretScan(new Dictionary<string, string> { ["short"] = "abc" }));
        }
        finally
        {
            await redis.ExecuteAsync("DEL", [.. new[] { "string", "hash", "list", "set", "zset", "stream", "key-" + Planted, "clean" }.Select(k => (RedisArg)(prefix + k))]);
        }
    }
}
