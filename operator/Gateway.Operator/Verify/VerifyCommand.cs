using System.Net.Sockets;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Npgsql;

namespace Gateway.Operator.Verify;

/// <summary>
/// <c>Gateway.Operator verify [options]</c>: the conservation check (README.md in this folder), read-only, with the
/// operator's configuration (connection strings, TokenGate:Redis:KeyPrefix; appsettings.json, environment variables,
/// --Section:Key value arguments). Exit codes: 0 clean, 1 violations, 2 usage or configuration error, 3 PostgreSQL
/// or Redis unreachable (or the check could not complete).
/// </summary>
public static class VerifyCommand
{
    public const string Name = "verify";
    public const int ExitClean = 0;
    public const int ExitViolations = 1;
    public const int ExitUsage = 2;
    public const int ExitUnreachable = 3;

    public const string Help = """
        Usage: Gateway.Operator verify [options] [--Section:Key value ...]

        Checks, read-only, that money is conserved between PostgreSQL and Redis: for every user
        Σ ledger = Redis balance + open reservations + usage events still in the stream (within the
        sub-micro-dollar rounding), every usage_log row with a cost has exactly one consume entry and
        the reverse, no request id is recorded twice, and no reservation outlived its lease.
        Configuration as for the operator: ConnectionStrings__Postgres, ConnectionStrings__Redis,
        TokenGate__Redis__KeyPrefix (environment), appsettings.json, or --ConnectionStrings:Postgres VALUE.

        Options:
              --json              machine-readable report on stdout
              --settle-wait D     retry checks a live system can fail for a moment (balances, grants)
                                  for up to D before reporting them (default 10s; 0 = once)
              --lease-grace D     a reservation open longer than D past its lease is a violation
                                  (default 30s; the sweeper charges expired ones every 2 s)
              --strict            require each balance exactly at the ledger's per-entry rounding (true
                                  unless the projection was rebuilt from the ledger since the user's
                                  first grant)
              --max-listed N      violations listed per kind (default 100; all are counted)
          -h, --help              this text

        Exit codes: 0 clean; 1 violations; 2 usage or configuration error; 3 PostgreSQL or Redis
        unreachable, or the check could not complete.
        """;

    /// <summary>Entry from Program: the real console.</summary>
    public static Task<int> RunAsync(string[] args) => RunAsync(args, Console.Out, Console.Error);

    public static async Task<int> RunAsync(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        var (options, configArgs, error) = VerifyOptions.Parse(args.Count > 0 && args[0] == Name ? args.Skip(1).ToList() : args);
        if (error is not null)
        {
            await stderr.WriteLineAsync($"verify: {error}");
            await stderr.WriteLineAsync("Run `Gateway.Operator verify --help` for the options.");
            return ExitUsage;
        }
        if (options!.Help)
        {
            await stdout.WriteAsync(Help);
            return ExitClean;
        }
        var settings = VerifySettings.Load(configArgs);
        if (settings.Problems.Count > 0)
        {
            foreach (var p in settings.Problems) await stderr.WriteLineAsync($"verify: {p}");
            return ExitUsage;
        }

        var keys = new ProjectionKeys(settings.KeyPrefix);
        await using var dataSource = NpgsqlDataSource.Create(settings.Postgres!);
        IRedisClient redis;
        try
        {
            redis = await RedisClients.ConnectAsync(settings.Redis!, null, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && IsUnreachable(e))
        {
            await stderr.WriteLineAsync($"verify: Redis at {settings.Redis!.EndPoint} is unreachable ({e.GetType().Name}: {e.Message}).");
            return ExitUnreachable;
        }
        await using (redis)
        {
            VerifyReport report;
            try
            {
                report = await new ConservationChecker(dataSource, redis, keys, options).RunAsync(ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && IsUnreachable(e))
            {
                var store = e is NpgsqlException ? $"PostgreSQL at {settings.PostgresTarget}" : $"Redis at {settings.Redis!.EndPoint}";
                await stderr.WriteLineAsync($"verify: {store} could not be read ({e.GetType().Name}: {e.Message}).");
                return ExitUnreachable;
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is InvalidCastException or FormatException or OverflowException or InvalidOperationException)
            {
                // Data the checker cannot interpret (a changed schema, a Redis key of an unexpected type): no verdict.
                await stderr.WriteLineAsync($"verify: the check could not complete ({e.GetType().Name}: {e.Message}).");
                return ExitUnreachable;
            }
            var code = report.Clean ? ExitClean : ExitViolations;
            var target = $"PostgreSQL {settings.PostgresTarget}, Redis {settings.Redis!.EndPoint} prefix {keys.Prefix}";
            if (options.Json) VerifyReportWriter.WriteJson(stdout, report, code, target);
            else VerifyReportWriter.WriteText(stdout, report, code, target);
            return code;
        }
    }

    // Npgsql reports a connect timeout as its own cancellation, and a missing database or table as PostgresException
    // (an NpgsqlException); none of these is a verdict on the data.
    private static bool IsUnreachable(Exception e) =>
        e is NpgsqlException or RedisConnectionException or RedisServerException or SocketException or TimeoutException or IOException
            or OperationCanceledException;
}
