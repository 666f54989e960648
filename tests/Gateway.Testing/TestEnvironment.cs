using Npgsql;

namespace Gateway.Testing;

/// <summary>Addresses of the real local services started by <c>make services</c> (config/local/services.sh).</summary>
public static class TestEnvironment
{
    public static string PostgresHost => Environment.GetEnvironmentVariable("TG_TEST_PG_HOST") ?? "127.0.0.1";
    public static int PostgresPort => int.TryParse(Environment.GetEnvironmentVariable("TG_TEST_PG_PORT"), out var p) ? p : 55432;
    public static string Redis => Environment.GetEnvironmentVariable("TG_TEST_REDIS") ?? "127.0.0.1:56379";

    public static string PostgresConnectionString(string database) =>
        $"Host={PostgresHost};Port={PostgresPort};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=20";

    /// <summary>A Redis key prefix unique to one test, so tests never see each other's keys.</summary>
    public static string UniqueRedisPrefix() => "tgt" + Guid.NewGuid().ToString("N")[..12] + ":";
}

/// <summary>A throw-away PostgreSQL database for one test class; dropped on dispose.</summary>
public sealed class TestDatabase : IAsyncDisposable
{
    private TestDatabase(string name) { Name = name; ConnectionString = TestEnvironment.PostgresConnectionString(name); }

    public string Name { get; }
    public string ConnectionString { get; }

    public static async Task<TestDatabase> CreateAsync()
    {
        var name = "tg_test_" + Guid.NewGuid().ToString("N")[..16];
        await using var conn = new NpgsqlConnection(TestEnvironment.PostgresConnectionString("postgres"));
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
        await cmd.ExecuteNonQueryAsync();
        return new TestDatabase(name);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var conn = new NpgsqlConnection(TestEnvironment.PostgresConnectionString("postgres"));
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{Name}\" WITH (FORCE)", conn);
        await cmd.ExecuteNonQueryAsync();
    }
}

/// <summary>Awaits a condition with a deadline instead of sleeping a fixed time.</summary>
public static class Eventually
{
    // Generous: a deadline costs time only when a test fails, and a loaded CI machine can be slow to get there.
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    /// <summary>Polls <paramref name="probe"/> until it returns a non-null value or the deadline passes.</summary>
    public static async Task<T> ReturnsAsync<T>(Func<Task<T?>> probe, string what, TimeSpan? timeout = null) where T : class
    {
        var deadline = DateTime.UtcNow + (timeout ?? DefaultTimeout);
        var delay = 10;
        Exception? last = null;
        while (true)
        {
            try
            {
                var v = await probe();
                if (v is not null) return v;
            }
            catch (Exception e) { last = e; }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"Timed out waiting for {what}.", last);
            await Task.Delay(delay);
            delay = Math.Min(delay * 2, 200);
        }
    }

    /// <summary>Polls until <paramref name="condition"/> is true or the deadline passes.</summary>
    public static async Task TrueAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        await ReturnsAsync<object>(async () => await condition() ? new object() : null, what, timeout);
    }
}
