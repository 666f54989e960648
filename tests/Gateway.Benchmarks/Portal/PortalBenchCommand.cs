using System.Diagnostics;
using System.Globalization;
using Gateway.Portal.Usage;
using Npgsql;

namespace Gateway.Benchmarks.Portal;

/// <summary>
/// <c>portal</c>: the portal at scale. Generates (or reuses) a database of its own with --rows usage rows
/// across --users users, one of them owning --big-user-rows, then times what each page runs on the server
/// for that user — the page model's queries, as the pages call them (Razor rendering and HTTP excluded) —
/// and streams the user's whole CSV. Prints p50/p95 per page and a Markdown table.
/// </summary>
public static class PortalBenchCommand
{
    public static async Task<int> RunAsync(CommandLine options)
    {
        var size = new PortalBenchSize(
            (long)options.Number("rows", 10_000_000), (int)options.Number("users", 10_000), (long)options.Number("big-user-rows", 1_000_000));
        if (size.BigUserRows >= size.Rows || size.Users < 2) throw new ArgumentException("--big-user-rows must be below --rows, and --users at least 2.");
        var iterations = (int)options.Number("iterations", 40);
        var host = options.Optional("host") ?? "127.0.0.1";
        var port = options.Optional("port") ?? "55432";
        var database = options.Optional("database") ?? "tokengate_bench_portal";
        var admin = $"Host={host};Port={port};Username=postgres;Database=postgres";
        var connectionString = $"Host={host};Port={port};Username=postgres;Database={database};Maximum Pool Size=8;Command Timeout=0";

        await using (var conn = new NpgsqlConnection(admin))
        {
            await conn.OpenAsync();
            await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @d", conn);
            exists.Parameters.AddWithValue("d", database);
            if (await exists.ExecuteScalarAsync() is null)
            {
                await using var create = new NpgsqlCommand($"CREATE DATABASE \"{database}\"", conn);
                await create.ExecuteNonQueryAsync();
            }
        }
        await using var db = NpgsqlDataSource.Create(connectionString);
        if (await PortalDataGenerator.IsCompleteAsync(db, size))
        {
            Console.WriteLine($"reusing {database}: {size.Rows:N0} rows, {size.Users:N0} users (drop the database to regenerate)");
            // Migrations added since the data was generated (they must not need a rewrite of the big tables).
            await Gateway.Core.Storage.StorageServiceCollectionExtensions.MigrateAsync(connectionString);
        }
        else
        {
            if (options.Optional("reuse-only") == "true") throw new ArgumentException($"{database} holds no complete data set of this size.");
            Console.WriteLine($"generating {size.Rows:N0} usage rows for {size.Users:N0} users (one with {size.BigUserRows:N0}) in {database}…");
            await using (var conn = new NpgsqlConnection(admin))
            {
                await conn.OpenAsync();
                NpgsqlConnection.ClearAllPools();
                await using var recreate = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)", conn);
                await recreate.ExecuteNonQueryAsync();
                recreate.CommandText = $"CREATE DATABASE \"{database}\"";
                await recreate.ExecuteNonQueryAsync();
            }
            db.Clear(); // its idle connection went with the old database
            await PortalDataGenerator.GenerateAsync(connectionString, db, size, Console.Out);
        }

        var user = PortalDataGenerator.UserId(1);
        var dashboard = new DashboardQueries(db);
        var usage = new UsageQueries(db);
        var ledger = new LedgerQueries(db);
        var csv = new UsageCsvExport(db);
        var filter = new UsageFilter { Model = "gpt-4o" };
        var adminQueries = new Gateway.Portal.Admin.AdminQueries(new BenchContextFactory(connectionString), TimeProvider.System);
        var spendClock = new SpendSteppingClock();
        var spendSnapshot = new Gateway.Portal.Admin.SpendSnapshot(new BenchContextFactory(connectionString), spendClock);
        await spendSnapshot.GetAsync(default);

        // The cursor of page 100 of the filtered table, reached as a user would: 99 clicks on "Older".
        UsageCursor? cursor = null;
        for (var i = 0; i < 99; i++) cursor = (await usage.PageAsync(user, filter, cursor, null)).Older;

        var results = new List<(string Page, double[] Ms)>
        {
            ("dashboard", await TimeAsync(iterations, () => dashboard.LoadAsync(user, DateTimeOffset.UtcNow))),
            ("usage, page 1 (no filter)", await TimeAsync(iterations, async () =>
            {
                await usage.PageAsync(user, new UsageFilter(), null, null);
                await usage.TotalsAsync(user, new UsageFilter());
                await usage.FilterChoicesAsync(user);
            })),
            ("usage, page 100 (model filter)", await TimeAsync(iterations, async () =>
            {
                await usage.PageAsync(user, filter, cursor, null);
                await usage.TotalsAsync(user, filter);
                await usage.FilterChoicesAsync(user);
            })),
            ("usage, errors only, last 7 days", await TimeAsync(iterations, async () =>
            {
                var f = new UsageFilter { Status = UsageStatusFilter.Error, From = DateOnly.FromDateTime(DateTime.UtcNow).AddDays(-6) };
                await usage.PageAsync(user, f, null, null);
                await usage.TotalsAsync(user, f);
                await usage.FilterChoicesAsync(user);
            })),
            ("request detail", await TimeAsync(iterations, () => usage.DetailAsync(user, "bench-0000500000"))),
            ("ledger", await TimeAsync(iterations, () => ledger.HistoryAsync(user))),
            // The admin pages' queries (Gateway.Portal.Admin.AdminQueries): users page 1 holds the 1-million-row user.
            ("admin users, page 1 (balance, spend this period)", await TimeAsync(iterations, () => adminQueries.UsersAsync(1, default))),
            ("admin users, page 100", await TimeAsync(iterations, () => adminQueries.UsersAsync(100, default))),
            ("admin upstream accounts (last hour)", await TimeAsync(iterations, () => adminQueries.UpstreamsAsync(default))),
            // Each view past the refresh interval reads 30 days of the global roll-ups (M0006); in between a replica reuses them.
            ("admin spend by day, model and user (roll-ups read)", await TimeAsync(iterations, () => new SpendRefresh(spendSnapshot, spendClock).RunAsync())),
            ("admin spend (cached)", await TimeAsync(iterations, () => spendSnapshot.GetAsync(default))),
            ("admin failed requests, page 1", await TimeAsync(iterations, () => adminQueries.FailedRequestsAsync(1, default))),
        };

        var csvTimes = new List<double>();
        long csvRows = 0;
        for (var i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            await using var sink = new CountingStream();
            csvRows = await csv.WriteAsync(user, new UsageFilter(), sink);
            csvTimes.Add(sw.Elapsed.TotalMilliseconds);
            if (i == 0) Console.WriteLine($"csv: {csvRows:N0} rows, {sink.Length / 1024.0 / 1024.0:F1} MiB");
        }

        if (options.Optional("http") != "false")
        {
            results.AddRange(await PortalHttpPages.RunAsync(connectionString, user, cursor, iterations, Console.Out));
        }

        Console.WriteLine();
        Console.WriteLine($"| page (user with {size.BigUserRows:N0} of {size.Rows:N0} rows) | p50 ms | p95 ms | max ms |");
        Console.WriteLine("| --- | ---: | ---: | ---: |");
        foreach (var (page, ms) in results)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {page} | {Percentile(ms, 50):F1} | {Percentile(ms, 95):F1} | {ms.Max():F1} |"));
        }
        csvTimes.Sort();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| CSV export, all {csvRows:N0} rows streamed | {csvTimes[1] / 1000:F1} s (median of 3) | | {csvTimes[^1] / 1000:F1} s |"));
        Console.WriteLine($"load average after: {File.ReadAllText("/proc/loadavg").Trim()}");
        return 0;
    }



    private sealed class SpendRefresh(Gateway.Portal.Admin.SpendSnapshot snapshot, SpendSteppingClock clock)
    {
        public async Task RunAsync()
        {
            clock.Step();
            await snapshot.GetAsync(default);
        }
    }

    internal static async Task<double[]> TimeAsync(int iterations, Func<Task> run, int warmUp = 3)
    {
        for (var i = 0; i < warmUp; i++) await run(); // warm-up: plans cached, pages in shared buffers
        var ms = new double[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await run();
            ms[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        return ms;
    }

    internal static double Percentile(double[] values, double p)
    {
        var sorted = values.Order().ToArray();
        var rank = (int)Math.Ceiling(p / 100 * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }

    /// <summary>A write-only stream that counts bytes (the CSV goes nowhere, as to a fast client).</summary>
    private sealed class CountingStream : Stream
    {
        private long _length;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => _length += count;
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _length += buffer.Length;
            return ValueTask.CompletedTask;
        }
    }
}
