using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Portal.Hosting;

/// <summary>
/// Holds start-up until the operator (the schema's owner) has applied every migration this build knows,
/// so the portal never serves, or loads its data-protection key ring, against a missing or older schema
/// (`make run` starts the operator and the portal together). Registered before everything else, so
/// it runs before the other hosted services.
/// </summary>
public sealed partial class SchemaGate(IDbContextFactory<TokenGateDbContext> dbFactory, ILogger<SchemaGate> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(200);
        while (true)
        {
            string? waitingFor;
            try
            {
                await using var db = await dbFactory.CreateDbContextAsync(cancellationToken);
                // Asked first so an empty database does not log a failed query on every try.
                var history = await db.Database.SqlQueryRaw<bool>("""SELECT to_regclass('"__EFMigrationsHistory"') IS NOT NULL AS "Value" """).SingleAsync(cancellationToken);
                if (!history)
                {
                    waitingFor = "no migration applied yet";
                }
                else
                {
                    var pending = (await db.Database.GetPendingMigrationsAsync(cancellationToken)).ToList();
                    if (pending.Count == 0) return;
                    waitingFor = $"{pending.Count} migration(s) not applied yet, e.g. {pending[^1]}";
                }
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is Npgsql.NpgsqlException or TimeoutException or InvalidOperationException)
            {
                waitingFor = e.Message;
            }
            LogWaiting(logger, waitingFor, delay.TotalMilliseconds);
            await Task.Delay(delay, cancellationToken);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(1, LogLevel.Information, "Waiting for the operator to migrate the PostgreSQL schema ({WaitingFor}); retrying in {DelayMs} ms.")]
    private static partial void LogWaiting(ILogger logger, string waitingFor, double delayMs);
}
