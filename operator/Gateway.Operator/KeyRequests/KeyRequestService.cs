using Gateway.Core.Storage;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Gateway.Operator.KeyRequests;

/// <summary>Settings under TokenGate:KeyRequests.</summary>
public sealed class KeyRequestOptions
{
    /// <summary>Safety-net poll for requests whose notification was missed (e.g. while reconnecting).</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// Runs the <see cref="KeyRequestProcessor"/> on the leader: woken by PostgreSQL NOTIFY on the key request
/// channel (a trigger fires it for every new request), with a periodic poll as the safety net, and deleting
/// expired reveals on the way.
/// </summary>
public sealed partial class KeyRequestService(
    NpgsqlDataSource dataSource,
    KeyRequestProcessor processor,
    IOptions<KeyRequestOptions> options,
    ILogger<KeyRequestService> logger) : BackgroundService
{
    private long _wakeups;

    /// <summary>Notifications received (observability for tests).</summary>
    public long Wakeups => Interlocked.Read(ref _wakeups);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var poll = options.Value.PollInterval > TimeSpan.Zero ? options.Value.PollInterval : TimeSpan.FromSeconds(5);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var conn = await dataSource.OpenConnectionAsync(stoppingToken);
                conn.Notification += (_, _) => Interlocked.Increment(ref _wakeups);
                await using (var listen = new NpgsqlCommand("LISTEN " + KeyRequestContract.NotifyChannel, conn))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }
                while (!stoppingToken.IsCancellationRequested)
                {
                    // Listening first, then draining: a request inserted in between still wakes the next wait.
                    await processor.ProcessPendingAsync(stoppingToken);
                    await processor.CleanupAsync(stoppingToken);
                    await conn.WaitAsync(poll, stoppingToken);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                LogLoopFailed(logger, e);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(2), stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    [LoggerMessage(410, LogLevel.Error, "Key request loop failed; reconnecting")]
    private static partial void LogLoopFailed(ILogger logger, Exception e);
}
