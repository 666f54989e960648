using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Gateway.Benchmarks.Portal;

/// <summary>
/// <c>portal-spend</c>: the admin spend page at its worst case without generating usage rows. Its cost depends on the
/// size of the global roll-ups (days × models and days × users, migration M0006), not on the number of requests,
/// so this fills them directly: every one of --users users and --models models used on every one of --days days.
/// Then times <see cref="Gateway.Portal.Admin.SpendSnapshot"/> reading them (a view past the refresh interval) and
/// a view in between (cached). Prints p50/p95 in milliseconds.
/// </summary>
public static class PortalSpendBenchCommand
{
    public static async Task<int> RunAsync(CommandLine options)
    {
        var users = (int)options.Number("users", 10_000);
        var models = (int)options.Number("models", 5);
        var days = (int)options.Number("days", 90);
        var iterations = (int)options.Number("iterations", 40);
        var database = options.Optional("database") ?? "tokengate_bench_portal_spend";
        var host = options.Optional("host") ?? "127.0.0.1";
        var port = options.Optional("port") ?? "55432";
        var admin = $"Host={host};Port={port};Username=postgres;Database=postgres";
        var connectionString = $"Host={host};Port={port};Username=postgres;Database={database};Maximum Pool Size=8;Command Timeout=0";

        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            await using var recreate = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", conn);
            await recreate.ExecuteNonQueryAsync();
            recreate.CommandText = $"CREATE DATABASE \"{database}\"";
            await recreate.ExecuteNonQueryAsync();
        }
        await Gateway.Core.Storage.StorageServiceCollectionExtensions.MigrateAsync(connectionString);
        var fill = Stopwatch.StartNew();
        await using (var conn = new NpgsqlConnection(connectionString))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"""
                INSERT INTO users (id, namespace, name, login, email)
                SELECT ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, 'bench', 'u' || g, 'u' || g, 'u' || g || '@example.com'
                FROM generate_series(1, {users}) g;
                INSERT INTO usage_daily_by_user (day, user_id, requests, tokens, cost)
                SELECT current_date - d, ('00000000-0000-0000-0000-' || lpad(to_hex(g), 12, '0'))::uuid, 10 + g % 7, 1000 * (1 + g % 13), (g % 97) * 0.013
                FROM generate_series(1, {users}) g, generate_series(0, {days - 1}) d;
                INSERT INTO usage_daily_by_model (day, model, requests, tokens, cost)
                SELECT current_date - d, 'model-' || m, 1000 + m, 100000 * m, m * 1.5
                FROM generate_series(1, {models}) m, generate_series(0, {days - 1}) d;
                """, conn);
            await cmd.ExecuteNonQueryAsync();
            foreach (var table in new[] { "users", "usage_daily_by_user", "usage_daily_by_model" })
            {
                await using var vacuum = new NpgsqlCommand("VACUUM ANALYZE " + table, conn);
                await vacuum.ExecuteNonQueryAsync();
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"filled usage_daily_by_user with {(long)users * days:N0} rows ({users:N0} users × {days} days) and usage_daily_by_model with {models * days:N0} in {fill.Elapsed.TotalSeconds:F1} s"));

        var clock = new SpendSteppingClock();
        var snapshot = new Gateway.Portal.Admin.SpendSnapshot(new BenchContextFactory(connectionString), clock);
        var read = await PortalBenchCommand.TimeAsync(iterations, async () => { clock.Step(); await snapshot.GetAsync(default); });
        var cached = await PortalBenchCommand.TimeAsync(iterations, async () => await snapshot.GetAsync(default));
        var figures = await snapshot.GetAsync(default);
        Console.WriteLine($"top user: {figures.ByUser[0].Key} {figures.ByUser[0].Spend} USD; {figures.ByDay.Count} days, {figures.ByModel.Count} models");
        Console.WriteLine("| admin spend page | p50 ms | p95 ms | max ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        Print("read of the roll-ups (30 days by day, model, top 50 users)", read);
        Print("cached (within the refresh interval)", cached);
        Console.WriteLine($"load average after: {File.ReadAllText("/proc/loadavg").Trim()}");

        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            NpgsqlConnection.ClearAllPools();
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", conn);
            await drop.ExecuteNonQueryAsync();
        }
        return 0;
    }

    private static void Print(string name, double[] ms) => Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {PortalBenchCommand.Percentile(ms, 50):F1} | {PortalBenchCommand.Percentile(ms, 95):F1} | {ms.Max():F1} |"));



}
