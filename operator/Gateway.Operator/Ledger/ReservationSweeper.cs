using Gateway.Core.Enforcement;

namespace Gateway.Operator.Ledger;

/// <summary>
/// Charges reservations whose request never settled (e.g. the proxy pod was killed mid-request): the
/// enforcer turns each into a usage event at its reserved amount, which the ledger writer persists.
/// No request is free, and a late settlement of the same request is a no-op, so none is charged twice.
/// </summary>
public sealed partial class ReservationSweeper(Enforcer enforcer, TimeProvider time, ILogger<ReservationSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        while (await WaitAsync(timer, stoppingToken))
        {
            try
            {
                var expired = await enforcer.ExpireReservationsAsync(time.GetUtcNow(), 500, stoppingToken);
                if (expired.Count > 0) LogExpired(logger, expired.Count);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(logger, e.GetType().Name, e.Message);
            }
        }
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    [LoggerMessage(210, LogLevel.Warning, "Charged {Count} orphaned reservation(s) at their reserved amount")]
    private static partial void LogExpired(ILogger logger, int count);

    [LoggerMessage(211, LogLevel.Warning, "Sweeping expired reservations failed ({Error}: {Message})")]
    private static partial void LogFailed(ILogger logger, string error, string message);
}
