using System.Text.Json;
using Gateway.Core.Enforcement;
using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Core.Storage;
using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Gateway.Portal.Admin;

/// <summary>One user on the admin overview.</summary>
public sealed record AdminUser(
    Guid Id, string Namespace, string Name, string Login, string Email, string State, string Role,
    decimal Balance, decimal SpentThisPeriod, decimal? Budget, string BudgetPeriod, DateTimeOffset? PeriodResetsAt);

/// <summary>One upstream account with the last hour's outcomes from usage_log.</summary>
public sealed record AdminUpstream(string Namespace, string Name, string Provider, string BaseUrl, int Priority, bool Disabled,
    long Requests, long Failures, DateTimeOffset? LastFailure, string? RefreshBefore, bool OAuth, DateTimeOffset? TokenExpiresAt, string? LastError)
{
    public string Account => Namespace + "/" + Name;
    public double? ErrorRate => Requests == 0 ? null : (double)Failures / Requests;
}

/// <summary>Spend and tokens of one group (day, model or user) over a window.</summary>
public sealed class SpendRow
{
    public string Key { get; set; } = "";
    public decimal Spend { get; set; }
    public long Tokens { get; set; }
    public long Requests { get; set; }
}

/// <summary>A failed request.</summary>
public sealed class FailedRequest
{
    public DateTimeOffset StartedAt { get; set; }
    public string RequestId { get; set; } = "";
    public string? Login { get; set; }
    public string Model { get; set; } = "";
    public string Upstream { get; set; } = "";
    public int Status { get; set; }
    public string? ErrorCode { get; set; }
    public int DurationMs { get; set; }
}

/// <summary>
/// Read-only queries of the admin pages. Users are paged by the users primary ordering; balances and period
/// spend are summed per page of users from ledger_entries (user_id, created_at). Time-window queries over
/// usage_log use the started_at indexes of M0005_PortalSecurityAdmin; spend over time is <see cref="SpendSnapshot"/>.
/// </summary>
public sealed class AdminQueries(IDbContextFactory<TokenGateDbContext> dbFactory, TimeProvider time)
{
    public const int PageSize = 50;
    public static readonly TimeSpan HealthWindow = TimeSpan.FromHours(1);

    public static string StateOf(UserRow u) => u.Suspended ? "suspended" : u.Enrollment == "Enrolled" ? "enrolled" : "invited";

    public async Task<(IReadOnlyList<AdminUser> Users, int Total, bool HasNext)> UsersAsync(int page, CancellationToken ct)
    {
        page = Math.Max(1, page);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var total = await db.Users.CountAsync(u => u.DeletedAt == null, ct);
        var rows = await db.Users.AsNoTracking().Where(u => u.DeletedAt == null)
            .OrderBy(u => u.Namespace).ThenBy(u => u.Name)
            .Skip((page - 1) * PageSize).Take(PageSize + 1).ToListAsync(ct);
        var hasNext = rows.Count > PageSize;
        if (hasNext) rows.RemoveAt(rows.Count - 1);
        return (await DescribeAsync(db, rows, ct), total, hasNext);
    }

    public async Task<AdminUser?> UserAsync(Guid id, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.Users.AsNoTracking().SingleOrDefaultAsync(u => u.Id == id && u.DeletedAt == null, ct);
        return row is null ? null : (await DescribeAsync(db, [row], ct))[0];
    }

    public async Task<IReadOnlyList<ApiKeyRow>> KeysOfAsync(Guid userId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.ApiKeys.AsNoTracking().Where(k => k.UserId == userId && k.DeletedAt == null).OrderBy(k => k.Name).ToListAsync(ct);
    }

    /// <summary>
    /// Balance and spend this period of a page of users in one query, read like the dashboard reads them
    /// (Usage/LedgerQueries, Usage/DashboardQueries): consumption from the ledger_daily roll-up, every other entry
    /// kind through the ledger indexes, and the partial first day of a period that does not start at UTC midnight
    /// from ledger_entries. Spend is the operator's definition: consumption and expiry since the period start.
    /// </summary>
    private async Task<IReadOnlyList<AdminUser>> DescribeAsync(TokenGateDbContext db, List<UserRow> rows, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var ids = rows.Select(r => r.Id).ToArray();
        var budgets = rows.Select(r => Budget(r.Spec)).ToArray();
        var periods = budgets.Select(b => SafePeriod(b, now)).ToArray();
        var starts = new DateTime[rows.Count];
        var wholeDays = new DateOnly[rows.Count];
        var wholeDayStarts = new DateTime[rows.Count];
        for (var i = 0; i < rows.Count; i++)
        {
            var start = (periods[i]?.Start ?? DateTimeOffset.UnixEpoch).UtcDateTime;
            var day = DateOnly.FromDateTime(start);
            var whole = start.TimeOfDay == TimeSpan.Zero ? day : day.AddDays(1);
            starts[i] = start;
            wholeDays[i] = whole;
            wholeDayStarts[i] = whole.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        }
        var sums = await db.Database.SqlQuery<UserSums>($"""
            SELECT t.uid AS "UserId",
                   (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = t.uid AND kind <> 'consume')
                 + (SELECT coalesce(sum(amount), 0) FROM ledger_daily WHERE user_id = t.uid) AS "Balance",
                 -((SELECT coalesce(sum(amount), 0) FROM ledger_daily WHERE user_id = t.uid AND day >= t.wholeday)
                 + (SELECT coalesce(sum(amount), 0) FROM ledger_entries
                    WHERE user_id = t.uid AND kind = 'consume' AND created_at >= t.start AND created_at < t.wholedaystart)
                 + (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE user_id = t.uid AND kind = 'expire' AND created_at >= t.start)) AS "Spent"
            FROM unnest({ids}, {starts}, {wholeDays}, {wholeDayStarts}) AS t(uid, start, wholeday, wholedaystart)
            """).ToListAsync(ct);
        var byId = sums.ToDictionary(s => s.UserId);
        return rows.Select((r, i) =>
        {
            var s = byId.GetValueOrDefault(r.Id);
            return new AdminUser(r.Id, r.Namespace, r.Name, r.Login, r.Email, StateOf(r), r.PortalRole,
                s?.Balance ?? 0m, s?.Spent ?? 0m, budgets[i]?.Amount, budgets[i]?.Period ?? BudgetPeriods.None, periods[i]?.End);
        }).ToList();
    }

    public async Task<IReadOnlyList<AdminUpstream>> UpstreamsAsync(CancellationToken ct)
    {
        var since = time.GetUtcNow() - HealthWindow;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var accounts = await db.UpstreamAccounts.AsNoTracking().Where(a => a.DeletedAt == null)
            .OrderBy(a => a.Namespace).ThenBy(a => a.Name).ToListAsync(ct);
        var stats = await db.UsageLog.AsNoTracking().Where(u => u.StartedAt >= since)
            .GroupBy(u => u.Upstream)
            .Select(g => new { Upstream = g.Key, Requests = g.LongCount(), Failures = g.LongCount(u => u.Status >= 500 || u.Status == 429), LastFailure = g.Where(u => u.Status >= 500 || u.Status == 429).Max(u => (DateTimeOffset?)u.StartedAt) })
            .ToListAsync(ct);
        var byName = stats.ToDictionary(s => s.Upstream, StringComparer.Ordinal);
        return accounts.Select(a =>
        {
            var s = byName.GetValueOrDefault(a.Namespace + "/" + a.Name) ?? byName.GetValueOrDefault(a.Name);
            var (oauth, refreshBefore) = OAuthOf(a.Spec);
            return new AdminUpstream(a.Namespace, a.Name, a.Provider, a.BaseUrl, a.Priority, a.Disabled,
                s?.Requests ?? 0, s?.Failures ?? 0, s?.LastFailure, refreshBefore, oauth, a.TokenExpiresAt, a.LastError);
        }).ToList();
    }

    /// <summary>Failed requests (status >= 400), newest first.</summary>
    public async Task<(IReadOnlyList<FailedRequest> Rows, bool HasNext)> FailedRequestsAsync(int page, CancellationToken ct)
    {
        page = Math.Max(1, page);
        var offset = (page - 1) * PageSize;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var rows = await FailedAsync(db, offset, ct);
        var hasNext = rows.Count > PageSize;
        return (hasNext ? rows[..PageSize] : rows, hasNext);
    }

    /// <summary>Newest first through usage_log_failed_idx (M0005).</summary>
    private static async Task<List<FailedRequest>> FailedAsync(TokenGateDbContext db, int offset, CancellationToken ct)
    {
        return await db.Database.SqlQueryRaw<FailedRequest>("""
            SELECT l.started_at AS "StartedAt", l.request_id AS "RequestId", u.login AS "Login", l.model AS "Model",
                   l.upstream AS "Upstream", l.status AS "Status", l.error_code AS "ErrorCode", l.duration_ms AS "DurationMs"
            FROM usage_log l LEFT JOIN users u ON u.id = l.user_id
            WHERE l.status >= 400
            ORDER BY l.started_at DESC, l.id DESC
            OFFSET @offset LIMIT @limit
            """, new NpgsqlParameter("offset", offset), new NpgsqlParameter("limit", PageSize + 1)).ToListAsync(ct);
    }

    private static Budget? Budget(string spec)
    {
        try
        {
            return JsonSerializer.Deserialize<UserQuotaSpec>(spec, TokenGateJson.Options)?.Budget;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static BudgetPeriod? SafePeriod(Budget? budget, DateTimeOffset now)
    {
        try
        {
            return BudgetCalendar.CurrentPeriod(budget, now);
        }
        catch (Exception e) when (e is ArgumentException or TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            return null;
        }
    }

    /// <summary>Whether the account signs in with OAuth (spec.credentials.oauth), and its oauth.refreshBefore.</summary>
    private static (bool OAuth, string? RefreshBefore) OAuthOf(string spec)
    {
        try
        {
            using var doc = JsonDocument.Parse(spec);
            if (!doc.RootElement.TryGetProperty("credentials", out var c) || c.ValueKind != JsonValueKind.Object
                || !c.TryGetProperty("oauth", out var o) || o.ValueKind != JsonValueKind.Object) return (false, null);
            return (true, o.TryGetProperty("refreshBefore", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null);
        }
        catch (JsonException)
        {
            return (false, null);
        }
    }

    private sealed class UserSums
    {
        public Guid UserId { get; set; }
        public decimal Balance { get; set; }
        public decimal Spent { get; set; }
    }
}
