using System.Globalization;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Storage;
using Gateway.Operator.Reconcilers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Telemetry;

/// <summary>
/// Judges every upstream account's health each TokenGate:UpstreamHealthInterval from what the proxies report: its
/// shared cooldown in Redis (an upstream 429 with Retry-After, or the circuit breaker) and its requests in the last
/// <see cref="Window"/> of <c>usage_log</c> (5xx, 429, timeouts and connection errors count as failures; a
/// client's 4xx does not). Also reads every account's rolling windows (<see cref="UpstreamWindows"/>) for status.windows.
/// One PostgreSQL query, one MGET and one script call per interval; leader only. The verdicts go to
/// <see cref="UpstreamHealthBoard"/>, which the reconciler turns into the Healthy condition, status.cooldownUntil and status.windows.
/// </summary>
public sealed partial class UpstreamHealthMonitor(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    IRedisClient redis,
    ProjectionKeys keys,
    UpstreamHealthBoard board,
    IOptions<OperatorOptions> options,
    TimeProvider time,
    ILogger<UpstreamHealthMonitor> logger) : BackgroundService
{
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(15);
    /// <summary>Fewer requests than this in the window never make an account unhealthy by their failures alone.</summary>
    public const int MinRequests = 4;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.UpstreamHealthInterval, time);
        try
        {
            do
            {
                try { board.Publish(await MeasureAsync(stoppingToken)); }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    LogFailed(logger, e.GetType().Name, e.Message);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping (or leadership ended).
        }
        finally
        {
            board.Clear();
        }
    }

    /// <summary>The verdict of every live upstream account, by "namespace/name".</summary>
    public async Task<IReadOnlyDictionary<string, UpstreamHealthVerdict>> MeasureAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var since = now - Window;
        List<string> accounts;
        Dictionary<string, (long Requests, long Failures)> stats;
        await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
        {
            accounts = await db.UpstreamAccounts.AsNoTracking().Where(a => a.DeletedAt == null && !a.Disabled)
                .Select(a => a.Namespace + "/" + a.Name).ToListAsync(cancellationToken);
            stats = (await db.UsageLog.AsNoTracking().Where(u => u.StartedAt >= since)
                    .GroupBy(u => u.Upstream)
                    .Select(g => new { g.Key, Requests = g.LongCount(), Failures = g.LongCount(u => u.Status >= 500 || u.Status == 429) })
                    .ToListAsync(cancellationToken))
                .ToDictionary(s => s.Key, s => (s.Requests, s.Failures), StringComparer.Ordinal);
        }
        var result = new Dictionary<string, UpstreamHealthVerdict>(StringComparer.Ordinal);
        if (accounts.Count == 0) return result;
        var reply = await redis.ExecuteAsync("MGET", accounts.Select(a => (RedisArg)keys.UpstreamCooldown(a)).ToList(), cancellationToken);
        var windows = await UpstreamWindows.AddAndReadAsync(redis, keys, accounts.Select(a => new WindowDelta(a, 0, 0)).ToList(), cancellationToken);
        var minutes = (int)Window.TotalMinutes;
        for (var i = 0; i < accounts.Count; i++)
        {
            var account = accounts[i];
            DateTimeOffset? cooldown = i < reply.Items.Count
                && long.TryParse(reply.Items[i].AsString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var ms)
                && DateTimeOffset.FromUnixTimeMilliseconds(ms) is var until && until > now ? until : null;
            var (requests, failures) = stats.GetValueOrDefault(account);
            UpstreamHealthVerdict verdict = cooldown is { } c
                ? new("False", "CoolingDown", string.Create(CultureInfo.InvariantCulture,
                    $"The proxies hold the account in cooldown until {c.UtcDateTime:yyyy-MM-ddTHH:mm:ssZ} (an upstream 429 with Retry-After, or repeated failures)."), c)
                : requests >= MinRequests && failures * 2 >= requests
                    ? new("False", "FailingRequests", string.Create(CultureInfo.InvariantCulture,
                        $"{failures} of {requests} requests in the last {minutes} minutes failed (5xx, 429, timeouts or connection errors)."), null)
                    : requests > 0
                        ? new("True", "RequestsSucceeding", string.Create(CultureInfo.InvariantCulture,
                            $"{requests} requests in the last {minutes} minutes, {failures} failed."), null)
                        : new("Unknown", "NoRecentTraffic", $"No requests in the last {minutes} minutes.", null);
            result[account] = verdict with { Windows = windows[i] };
        }
        return result;
    }

    [LoggerMessage(430, LogLevel.Warning, "Judging upstream account health failed ({Error}: {Message})")]
    private static partial void LogFailed(ILogger logger, string error, string message);
}
