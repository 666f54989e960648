using System.Diagnostics;
using System.Globalization;
using Gateway.Core.Usage;
using Gateway.Testing;
using Npgsql;

namespace Gateway.Benchmarks.Ledger;

/// <summary>
/// <c>ledger-write</c>: what the ledger writer's PostgreSQL side costs per usage event (issue #11, item 4). Writes
/// <c>--events</c> usage events for <c>--users</c> users through <see cref="UsageLedgerBatch"/> (the statement the ledger
/// writer runs: usage rows, consume entries, last use, four daily roll-ups, idempotent on request_id) in batches of each
/// <c>--batches</c> size, on a database of its own, over one connection, and prints per event: the PostgreSQL backend's
/// CPU (utime + stime of its process, from /proc), this process's CPU (parameter building, Npgsql), and the wall time.
/// A final run writes the same events again, to show what a replay costs (every row a conflict, nothing inserted).
/// <c>--without-read-indexes true</c> drops the non-unique indexes of usage_log and ledger_entries first, to attribute
/// the cost (those indexes serve the portal's queries; the product keeps them).
/// </summary>
public static class LedgerWriteCommand
{
    public static async Task<int> RunAsync(CommandLine options)
    {
        var events = (int)options.Number("events", 20_000);
        var users = (int)options.Number("users", 100);
        var batches = (options.Optional("batches") ?? "1,10,100,1000").Split(',').Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToArray();
        await using var database = await TestDatabase.CreateAsync();
        await Gateway.Core.Storage.StorageServiceCollectionExtensions.MigrateAsync(database.ConnectionString);
        // For attribution only: without the read indexes of usage_log and ledger_entries (the portal's and the admin
        // overview's queries need them), how much of the cost is their upkeep.
        var withoutReadIndexes = options.Optional("without-read-indexes") == "true";
        if (withoutReadIndexes)
        {
            await using var conn = new NpgsqlConnection(database.ConnectionString);
            await conn.OpenAsync();
            await using var drop = new NpgsqlCommand("""
                DO $$ DECLARE r record; BEGIN
                  FOR r IN SELECT indexname FROM pg_indexes i WHERE tablename IN ('usage_log', 'ledger_entries')
                    AND NOT EXISTS (SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid WHERE c.relname = i.indexname AND (x.indisunique OR x.indisprimary))
                  LOOP EXECUTE 'DROP INDEX ' || quote_ident(r.indexname); END LOOP;
                END $$;
                """, conn);
            await drop.ExecuteNonQueryAsync();
        }
        await using var dataSource = NpgsqlDataSource.Create(database.ConnectionString + ";Maximum Pool Size=1;Minimum Pool Size=1");
        var callers = await SeedAsync(dataSource, users);
        int backendPid;
        await using (var cmd = dataSource.CreateCommand("SELECT pg_backend_pid()")) backendPid = (int)(await cmd.ExecuteScalarAsync())!;

        Console.WriteLine($"ledger-write: {events:N0} events per batch size, {users} users, PostgreSQL backend pid {backendPid}"
            + (withoutReadIndexes ? ", WITHOUT the read indexes of usage_log and ledger_entries (attribution only)" : ""));
        Console.WriteLine("batch\tevents/s\tpg_us_per_event\tclient_us_per_event\twall_us_per_event");
        var run = 0;
        List<UsageEvent>? last = null;
        foreach (var batch in batches)
        {
            var list = Events(events, callers, run++);
            await MeasureAsync(dataSource, backendPid, list, batch, batch.ToString(CultureInfo.InvariantCulture));
            last = list;
        }
        if (last is not null) await MeasureAsync(dataSource, backendPid, last, batches[^1], $"{batches[^1]} (replay)");
        return 0;
    }

    private static async Task MeasureAsync(NpgsqlDataSource dataSource, int backendPid, List<UsageEvent> list, int batch, string label)
    {
        var pgBefore = ProcessCpuMicros(backendPid);
        var selfBefore = Process.GetCurrentProcess().TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < list.Count; i += batch)
            await UsageLedgerBatch.WriteAsync(dataSource, list.GetRange(i, Math.Min(batch, list.Count - i)));
        clock.Stop();
        var pg = ProcessCpuMicros(backendPid) - pgBefore;
        var self = (Process.GetCurrentProcess().TotalProcessorTime - selfBefore).TotalMicroseconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{label}\t{list.Count / clock.Elapsed.TotalSeconds:F0}\t{(double)pg / list.Count:F1}\t{self / list.Count:F1}\t{clock.Elapsed.TotalMicroseconds / list.Count:F1}"));
    }

    private static List<UsageEvent> Events(int count, List<(Guid User, Guid Key)> callers, int run)
    {
        var start = DateTimeOffset.UtcNow;
        var list = new List<UsageEvent>(count);
        for (var i = 0; i < count; i++)
        {
            var (user, key) = callers[i % callers.Count];
            list.Add(new UsageEvent
            {
                RequestId = $"bench-{run}-{i}",
                KeyId = key.ToString(),
                KeyVersion = 1,
                UserId = user.ToString(),
                Upstream = "default/mock",
                Model = i % 3 == 0 ? "gpt-4o" : "gpt-4o-mini",
                Route = "/v1/chat/completions",
                Tokens = new TokenCounts(120, 0, 0, 40),
                Cost = 0.000042m,
                PriceVersion = "2026-11-01",
                StartedAt = start.AddMilliseconds(i),
                DurationMs = 12,
                TimeToFirstByteMs = 4,
                Status = 200,
            });
        }
        return list;
    }

    private static async Task<List<(Guid User, Guid Key)>> SeedAsync(NpgsqlDataSource dataSource, int users)
    {
        var callers = new List<(Guid, Guid)>(users);
        for (var i = 0; i < users; i++)
        {
            var (user, key) = (Guid.NewGuid(), Guid.NewGuid());
            await using var cmd = dataSource.CreateCommand("""
                INSERT INTO users (id, namespace, name, login, email) VALUES (@u, 'bench', @n, @n, @n || '@example.com');
                INSERT INTO api_keys (id, namespace, name, user_id) VALUES (@k, 'bench', @n, @u);
                """);
            cmd.Parameters.AddWithValue("u", user);
            cmd.Parameters.AddWithValue("k", key);
            cmd.Parameters.AddWithValue("n", "user-" + i.ToString(CultureInfo.InvariantCulture));
            await cmd.ExecuteNonQueryAsync();
            callers.Add((user, key));
        }
        return callers;
    }

    private static long ProcessCpuMicros(int pid)
    {
        // /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised command name.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks * 1_000_000 / 100; // USER_HZ is 100 on Linux
    }
}
