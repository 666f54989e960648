using System.Globalization;
using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Gateway.Operator.Reconcilers;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Gateway.Operator.Telemetry;

/// <summary>
/// Refreshes tokengate_operator_user_budget_used_ratio: for every live UserQuota with a budget, the spend the
/// proxies counted in Redis for the current period (reservations in flight included, the same counter the
/// enforcement checks) over the budget amount. One PostgreSQL query and one MGET per interval; leader only.
/// </summary>
public sealed partial class UserBudgetMonitor(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    IRedisClient redis,
    ProjectionKeys keys,
    OperatorStateMetrics metrics,
    IOptions<OperatorOptions> options,
    TimeProvider time,
    ILogger<UserBudgetMonitor> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.BudgetMetricsInterval, time);
        try
        {
            do
            {
                try { metrics.SetBudgetUsage(await MeasureAsync(stoppingToken)); }
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
            metrics.SetBudgetUsage(new Dictionary<string, double>(StringComparer.Ordinal));
        }
    }

    /// <summary>Used ratio by "namespace/name" of every live user with a positive budget.</summary>
    public async Task<IReadOnlyDictionary<string, double>> MeasureAsync(CancellationToken cancellationToken)
    {
        List<(Guid Id, string Namespace, string Name, string Spec)> users;
        await using (var db = await dbFactory.CreateDbContextAsync(cancellationToken))
        {
            users = (await db.Users.AsNoTracking().Where(u => u.DeletedAt == null)
                .Select(u => new { u.Id, u.Namespace, u.Name, u.Spec }).ToListAsync(cancellationToken))
                .Select(u => (u.Id, u.Namespace, u.Name, u.Spec)).ToList();
        }
        var now = time.GetUtcNow();
        var names = new List<string>();
        var amounts = new List<decimal>();
        var budgetKeys = new List<string>();
        foreach (var u in users)
        {
            UserQuotaSpec? spec;
            try { spec = JsonSerializer.Deserialize<UserQuotaSpec>(u.Spec, TokenGateJson.Options); }
            catch (JsonException) { continue; }
            if (spec?.Budget is not { Amount: > 0 } budget) continue;
            BudgetPeriod? period;
            try { period = BudgetCalendar.CurrentPeriod(budget, now); }
            catch (Exception e) when (e is ArgumentException or TimeZoneNotFoundException or InvalidTimeZoneException) { continue; }
            names.Add(u.Namespace + "/" + u.Name);
            amounts.Add(budget.Amount);
            budgetKeys.Add(keys.BudgetSpent(u.Id.ToString(), period?.Id ?? "none"));
        }
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (budgetKeys.Count == 0) return result;
        // The budget keys live in their users' shards: one MGET per slot.
        var values = await redis.MGetPerSlotAsync(budgetKeys, cancellationToken);
        for (var i = 0; i < names.Count; i++)
        {
            var v = values[i];
            var micros = v.IsNull ? 0L : long.Parse(v.AsString()!, NumberStyles.Integer, CultureInfo.InvariantCulture);
            result[names[i]] = (double)(micros / 1_000_000m / amounts[i]);
        }
        return result;
    }

    [LoggerMessage(400, LogLevel.Warning, "Measuring user budgets failed ({Error}: {Message}); the budget gauge keeps its last values")]
    private static partial void LogFailed(ILogger logger, string error, string message);
}
