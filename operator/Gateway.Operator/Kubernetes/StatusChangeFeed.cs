using Gateway.Core.Storage;
using Gateway.Kubernetes.Runtime;
using Microsoft.EntityFrameworkCore;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// Leader-only: keeps the usage figures in ApiKey and UserQuota status fresh without reconciling every object
/// on a timer. Every <c>TokenGate:ResyncInterval</c> it asks PostgreSQL what changed since its last pass — new
/// usage rows (by key), new ledger entries (by user), keys created or deleted (their owner's keyCount) and user
/// rows the portal touched (enrolment) — and queues only those objects. With nothing changing a pass is two
/// primary-key lookups (the highest ids) and two small queries that return nothing (the api_keys and users
/// tables are scanned by timestamp: a few milliseconds of PostgreSQL time a minute at 10,000 keys). Objects whose
/// inputs changed in the cluster arrive through their watch events as before; timers (expiry, grace periods,
/// budget resets) are the reconciles' own. After a start, the rows the start itself wrote show up once.
/// </summary>
/// <remarks>
/// Ids are sequence values, which concurrent transactions may commit out of order: a row committed after a pass
/// already moved past its id is not seen by this feed, so that one object's figures wait for its next change or
/// the full resync (<c>TokenGate:FullResyncInterval</c>). Status figures are informational; enforcement never
/// reads them.
/// </remarks>
public sealed partial class StatusChangeFeed(
    IDbContextFactory<TokenGateDbContext> dbFactory,
    Action<string> enqueueApiKey,
    Action<string> enqueueUserQuota,
    TimeSpan interval,
    TimeProvider time,
    ILogger logger) : IController
{
    private long _passes;
    private long _queued;

    public string Name => "StatusChangeFeed";

    /// <summary>Passes run (tests count them instead of timing them).</summary>
    public long Passes => Interlocked.Read(ref _passes);

    /// <summary>Objects queued because PostgreSQL showed a change for them.</summary>
    public long Queued => Interlocked.Read(ref _queued);

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        // The term starts by reconciling every object, so only what changes from now on matters.
        Cursor? cursor = null;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                cursor = cursor is null ? await StartAsync(cancellationToken) : await PassAsync(cursor, cancellationToken);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                Log.PassFailed(logger, e);
            }
            try
            {
                await Task.Delay(interval, time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private sealed record Cursor(long UsageId, long LedgerId, DateTimeOffset UsersSince);

    private async Task<Cursor> StartAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        return new Cursor(
            await db.UsageLog.MaxAsync(u => (long?)u.Id, ct) ?? 0,
            await db.LedgerEntries.MaxAsync(e => (long?)e.Id, ct) ?? 0,
            now);
    }

    private async Task<Cursor> PassAsync(Cursor cursor, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = time.GetUtcNow();
        var usageMax = await db.UsageLog.MaxAsync(u => (long?)u.Id, ct) ?? 0;
        var ledgerMax = await db.LedgerEntries.MaxAsync(e => (long?)e.Id, ct) ?? 0;

        if (usageMax > cursor.UsageId)
        {
            var keyIds = await db.UsageLog.Where(u => u.Id > cursor.UsageId && u.Id <= usageMax && u.ApiKeyId != null)
                .Select(u => u.ApiKeyId!.Value).Distinct().ToListAsync(ct);
            var keys = await db.ApiKeys.Where(k => keyIds.Contains(k.Id) && k.DeletedAt == null)
                .Select(k => new { k.Namespace, k.Name }).ToListAsync(ct);
            foreach (var k in keys) Queue(enqueueApiKey, k.Namespace + "/" + k.Name);
        }
        var userIds = ledgerMax > cursor.LedgerId
            ? await db.LedgerEntries.Where(e => e.Id > cursor.LedgerId && e.Id <= ledgerMax).Select(e => e.UserId).Distinct().ToListAsync(ct)
            : [];
        // status.keyCount: owners of keys created or deleted since the last pass (a key's own reconcile does not queue its owner).
        userIds.AddRange(await db.ApiKeys.Where(k => k.CreatedAt > cursor.UsersSince || k.DeletedAt > cursor.UsersSince)
            .Select(k => k.UserId).Distinct().ToListAsync(ct));
        // Enrolment in the portal stamps updated_at; the operator's own reconciles leave it alone unless they change the row.
        var users = await db.Users.Where(u => u.DeletedAt == null && (userIds.Contains(u.Id) || u.UpdatedAt > cursor.UsersSince))
            .Select(u => new { u.Namespace, u.Name }).ToListAsync(ct);
        foreach (var u in users) Queue(enqueueUserQuota, u.Namespace + "/" + u.Name);
        Interlocked.Increment(ref _passes);
        return new Cursor(usageMax, ledgerMax, now);
    }

    private void Queue(Action<string> enqueue, string key)
    {
        Interlocked.Increment(ref _queued);
        enqueue(key);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 620, Level = LogLevel.Warning, Message = "Status change feed pass failed; retrying at the next interval")]
        public static partial void PassFailed(ILogger logger, Exception exception);
    }
}
