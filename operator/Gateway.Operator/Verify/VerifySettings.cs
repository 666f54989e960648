using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Gateway.Operator.Verify;

/// <summary>The part of the operator's configuration verify needs, read from the same sources as the operator.</summary>
internal sealed record VerifySettings(string? Postgres, string PostgresTarget, RespClientOptions? Redis, string KeyPrefix, IReadOnlyList<string> Problems)
{
    // Long enough for the snapshot script over a large usage stream backlog.
    private static readonly TimeSpan MinimumCommandTimeout = TimeSpan.FromSeconds(60);

    public static VerifySettings Load(IReadOnlyList<string> configArgs)
    {
        var environment = Environment.GetEnvironmentVariable("DOTNET_ENVIRONMENT") ?? Environment.GetEnvironmentVariable("ASPNETCORE_ENVIRONMENT") ?? "Production";
        var problems = new List<string>();
        IConfiguration cfg;
        try
        {
            cfg = new ConfigurationBuilder()
                .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
                .AddJsonFile(Path.Combine(AppContext.BaseDirectory, $"appsettings.{environment}.json"), optional: true)
                .AddEnvironmentVariables()
                .AddCommandLine([.. configArgs])
                .Build();
        }
        catch (Exception e) when (e is FormatException or InvalidDataException or IOException)
        {
            return new VerifySettings(null, "", null, ProjectionKeys.DefaultPrefix, [$"the configuration could not be read: {e.Message}"]);
        }

        var postgres = cfg.GetConnectionString("Postgres");
        var target = "";
        if (string.IsNullOrWhiteSpace(postgres))
        {
            problems.Add("ConnectionStrings:Postgres is not set (e.g. Host=127.0.0.1;Port=55432;Username=postgres;Database=tokengate).");
        }
        else
        {
            try
            {
                // Host, port and database only: the connection string may hold a password.
                var b = new NpgsqlConnectionStringBuilder(postgres);
                target = $"{b.Host}:{b.Port}/{b.Database}";
            }
            catch (ArgumentException e)
            {
                problems.Add($"ConnectionStrings:Postgres is not a valid PostgreSQL connection string: {e.Message}");
            }
        }

        RespClientOptions? redis = null;
        var redisText = cfg.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(redisText))
        {
            problems.Add("ConnectionStrings:Redis is not set (e.g. 127.0.0.1:56379).");
        }
        else
        {
            try
            {
                redis = RespClientOptions.Parse(redisText);
                if (redis.CommandTimeout < MinimumCommandTimeout) redis = redis with { CommandTimeout = MinimumCommandTimeout };
            }
            catch (Exception e) when (e is FormatException or ArgumentException)
            {
                problems.Add($"ConnectionStrings:Redis is not a valid Redis address: {e.Message}");
            }
        }
        return new VerifySettings(postgres, target, redis, cfg["TokenGate:Redis:KeyPrefix"] ?? ProjectionKeys.DefaultPrefix, problems);
    }
}
