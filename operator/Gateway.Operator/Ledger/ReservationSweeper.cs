using Gateway.Core.Enforcement;

namespace Gateway.Operator.Ledger;

/// <summary>
/// Charges reservations whose request never settled (e.g. the proxy pod was killed mid-request): the
/// enforcer turns each into a usage event at its reserved amount, which the ledger writer persists.
/// No request is free, and a late settlement of the same request is a no-op, so none is charged twice.
/// Quota leases whose replica stopped returning them are reclaimed first (their unused part goes back, their requests in
/// flight become reservations that expire at once), so one pass charges those requests too.
/// </summary>
public sealed partial class ReservationSweeper(Enforcer enforcer, TimeProvider time, ILogger<ReservationSweeper> logger) : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    // A live replica returns its leases at expiry; only one that has not for this long is taken to be gone.
    private static readonly TimeSpan LeaseGrace = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        while (await WaitAsync(timer, stoppingToken))
        {
            try
            {
                var reclaimed = await enforcer.ReclaimExpiredLeasesAsync(time.GetUtcNow() - LeaseGrace, 500, stoppingToken);
                if (reclaimed > 0) LogReclaimed(logger, reclaimed);
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

    [LoggerMessage(212, LogLevel.Warning, "Reclaimed {Count} quota lease(s) their replica did not return")]
    private static partial void LogReclaimed(ILogger logger, int count);

    [LoggerMessage(211, LogLevel.Warning, "Sweeping expired reservations failed ({Error}: {Message})")]
    private static partial void LogFailed(ILogger logger, string error, string message);
}
