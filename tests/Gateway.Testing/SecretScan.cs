using System.Text;
using Gateway.Core.Redis;
using Npgsql;

namespace Gateway.Testing;

/// <summary>One place a secret was found: where (never the secret itself) and which secret by its label.</summary>
public sealed record SecretFinding(string Where, string Secret);

/// <summary>
/// Searches what TokenGate stores and emits for secrets in plaintext: every value under a Redis key prefix (by
/// type), every row of every table of a PostgreSQL database, and any texts (log lines, /metrics output). A secret is
/// found as it is, and in PostgreSQL also as the hex of its UTF-8 bytes (how a bytea column prints). Each scan
/// returns how much it looked at, so a test can assert the scan was not empty.
/// </summary>
public sealed class SecretScan(IReadOnlyDictionary<string, string> secrets)
{
    private readonly List<SecretFinding> _findings = [];

    /// <summary>Secrets by label ("issued key", "pepper", ...); values shorter than 8 characters are refused as too likely to match by chance.</summary>
    public IReadOnlyDictionary<string, string> Secrets { get; } = secrets.All(s => s.Value.Length >= 8)
        ? secrets
        : throw new ArgumentException("Every secret to search for must be at least 8 characters long.", nameof(secrets));

    public IReadOnlyList<SecretFinding> Findings => _findings;

    /// <summary>Searches <paramref name="texts"/> (e.g. log lines of one component); returns how many were searched.</summary>
    public int Texts(string where, IEnumerable<string> texts)
    {
        var n = 0;
        foreach (var text in texts)
        {
            n++;
            Search($"{where} #{n}", text);
        }
        return n;
    }

    /// <summary>Reads every key under <paramref name="prefix"/> by its type and searches key names and values; returns the number of keys.</summary>
    public async Task<int> RedisAsync(IRedisClient redis, string prefix)
    {
        var count = 0;
        var cursor = "0";
        do
        {
            var page = await redis.ExecuteAsync("SCAN", [cursor, "MATCH", prefix + "*", "COUNT", 500]);
            cursor = page.Items[0].AsString()!;
            foreach (var item in page.Items[1].Items)
            {
                var key = item.AsString()!;
                count++;
                Search("Redis key name " + key, key);
                var type = (await redis.ExecuteAsync("TYPE", [key])).AsString();
                RespValue? value = type switch
                {
                    "string" => await redis.ExecuteAsync("GET", [key]),
                    "hash" => await redis.ExecuteAsync("HGETALL", [key]),
                    "list" => await redis.ExecuteAsync("LRANGE", [key, 0, -1]),
                    "set" => await redis.ExecuteAsync("SMEMBERS", [key]),
                    "zset" => await redis.ExecuteAsync("ZRANGE", [key, 0, -1, "WITHSCORES"]),
                    "stream" => await redis.ExecuteAsync("XRANGE", [key, "-", "+"]),
                    _ => null,
                };
                Search($"Redis {type} {key}", Flatten(value));
            }
        } while (cursor != "0");
        return count;
    }

    /// <summary>Reads every row of every table in the public schema as text; returns the number of rows.</summary>
    public async Task<int> PostgresAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync()) tables.Add(reader.GetString(0));
        }
        var rows = 0;
        foreach (var table in tables)
        {
            await using var select = new NpgsqlCommand($"SELECT t::text FROM \"{table}\" t", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows++;
                var row = reader.GetString(0);
                Search("PostgreSQL table " + table, row);
                Search("PostgreSQL table " + table + " (hex)", row, hex: true);
            }
        }
        return rows;
    }

    private void Search(string where, string text, bool hex = false)
    {
        foreach (var (label, secret) in Secrets)
        {
            var needle = hex ? Convert.ToHexStringLower(Encoding.UTF8.GetBytes(secret)) : secret;
            if (text.Contains(needle, hex ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
                _findings.Add(new SecretFinding(where, label));
        }
    }

    private static string Flatten(RespValue? value)
    {
        if (value is null || value.IsNull) return "";
        if (value.Type != RespType.Array) return value.AsString() ?? "";
        var sb = new StringBuilder();
        foreach (var item in value.Items) sb.Append(Flatten(item)).Append('\n');
        return sb.ToString();
    }
}
