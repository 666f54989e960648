using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Core.Enforcement;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Gateway.Operator.Projection;
using Npgsql;

namespace Gateway.Operator.Ledger;

/// <summary>Settings of the ledger writer (section TokenGate:Ledger).</summary>
public sealed class LedgerOptions
{
    public int BatchSize { get; set; } = 1000;
    /// <summary>
    /// Pause after a batch smaller than <see cref="BatchSize"/> before reading again, so events are
    /// written in batches rather than one transaction per request. Under steady traffic this is how
    /// late a usage row may appear; it costs no latency to requests (the proxy only appends to the
    /// stream). Zero writes each event as soon as it arrives.
    /// </summary>
    public TimeSpan Linger { get; set; } = TimeSpan.FromMilliseconds(200);
    /// <summary>
    /// How long the writer waits after finding every shard's usage stream empty before reading them all again (one
    /// non-blocking read per stream: a blocking read cannot span the shards' slots on Redis Cluster).
    /// </summary>
    public TimeSpan Block { get; set; } = TimeSpan.FromMilliseconds(250);
    /// <summary>
    /// Entries another consumer left pending longer than this are claimed, checked at least this often even under
    /// steady traffic. (At the start of each term the writer takes every entry still pending on another consumer at
    /// once: only the leader runs a writer, so they were left by a previous leader.)
    /// </summary>
    public TimeSpan ClaimIdle { get; set; } = TimeSpan.FromSeconds(30);
    public string ConsumerName { get; set; } = "ledger-" + Environment.MachineName;
    /// <summary>How often the leader measures the usage stream's backlog for the tokengate_ledger_backlog_* gauges.</summary>
    public TimeSpan MetricsInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>One message per wrong setting, empty when valid.</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (BatchSize is < 1 or > 100_000) errors.Add($"TokenGate:Ledger:BatchSize must be between 1 and 100000 (was {BatchSize}).");
        if (Linger < TimeSpan.Zero || Linger > TimeSpan.FromSeconds(10)) errors.Add($"TokenGate:Ledger:Linger must be between 00:00:00 and 00:00:10 (was {Linger}).");
        if (Block <= TimeSpan.Zero) errors.Add($"TokenGate:Ledger:Block must be positive (was {Block}).");
        if (ClaimIdle <= TimeSpan.Zero) errors.Add($"TokenGate:Ledger:ClaimIdle must be positive (was {ClaimIdle}).");
        if (string.IsNullOrWhiteSpace(ConsumerName)) errors.Add("TokenGate:Ledger:ConsumerName must not be empty.");
        if (MetricsInterval < TimeSpan.FromMilliseconds(100)) errors.Add($"TokenGate:Ledger:MetricsInterval must be at least 00:00:00.1 (was {MetricsInterval}).");
        return errors;
    }
}

/// <summary>
/// Moves usage events from the shards' Redis streams into <c>usage_log</c> and the ledger. At-least-once from
/// the stream, exactly-once in PostgreSQL (unique request_id), acknowledged only after commit: if
/// PostgreSQL is down the events wait in the stream and nothing is lost. Entries a writer read but never
/// acknowledged (its process was killed) are taken over by the next one: at once when it starts (a new leader's
/// term), else once they have been idle for <see cref="LedgerOptions.ClaimIdle"/>.
/// </summary>
public sealed partial class LedgerWriter(
    IRedisClient redis,
    NpgsqlDataSource dataSource,
    ProjectionKeys keys,
    Microsoft.Extensions.Options.IOptions<LedgerOptions> options,
    ILogger<LedgerWriter> logger,
    ProjectionRebuildGate? rebuildGate = null) : BackgroundService
{
    private static readonly Meter LedgerMeter = new("TokenGate.Ledger");
    private static readonly Counter<long> EventsWritten = LedgerMeter.CreateCounter<long>("tokengate_ledger_events_total", description: "Usage events persisted to PostgreSQL.");
    private static readonly Counter<long> WriteFailures = LedgerMeter.CreateCounter<long>("tokengate_ledger_write_failures_total", description: "Failed attempts to persist a batch of usage events.");
    private static readonly Counter<long> RechargeRefunds = LedgerMeter.CreateCounter<long>("tokengate_ledger_recharge_refunds_total",
        description: "Recharges (usage charged again after Redis lost its data) refunded because the ledger already had the request.");

    private readonly LedgerOptions _options = options.Value;
    private long _persisted;

    /// <summary>Events persisted by this instance.</summary>
    public long Persisted => Interlocked.Read(ref _persisted);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(200);
        List<StreamCursor>? streams = null;
        var lastClaim = Stopwatch.GetTimestamp();
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // Once per term (and after a failure): the group on every shard's stream, and the stream of the layout
                // before hash tags while an upgrade left events in it.
                streams ??= await OpenStreamsAsync(stoppingToken);

                var batch = new List<(StreamCursor Stream, StreamEntry Entry)>();
                // A rebuild of the projection (after Redis lost its data) seeds balances from the ledger: it must not
                // run while a batch read before the loss is half written, or that batch's charges would be in neither.
                using (await EnterGateAsync(stoppingToken))
                {
                    // Under steady traffic a read never comes back empty: claim on a clock too, or what a dead
                    // consumer left would wait for the first quiet moment.
                    var claimDue = Stopwatch.GetElapsedTime(lastClaim) >= _options.ClaimIdle;
                    // An old proxy still running during an upgrade may write the old stream again after it was drained.
                    if (claimDue && !streams.Exists(s => s.Legacy)) await AddLegacyIfPresentAsync(streams, stoppingToken);
                    var reads = await Task.WhenAll(streams.Select(stream => ReadAsync(stream, claimDue, stoppingToken)));
                    if (claimDue) lastClaim = Stopwatch.GetTimestamp();
                    for (var i = 0; i < streams.Count; i++)
                        foreach (var entry in reads[i]) batch.Add((streams[i], entry));

                    if (batch.Count > 0)
                    {
                        await PersistAsync(batch.Select(b => b.Entry).ToList(), stoppingToken);
                        await Task.WhenAll(batch.GroupBy(b => b.Stream).Select(g => AcknowledgeAsync(g.Key.Key, g.Select(b => b.Entry.Id).ToList(), stoppingToken)));
                    }
                }
                await DropDrainedLegacyAsync(streams, reads: batch, stoppingToken);
                Interlocked.Add(ref _persisted, batch.Count);
                EventsWritten.Add(batch.Count);
                backoff = TimeSpan.FromMilliseconds(200);
                // Every stream empty: wait before looking again. A short batch means the streams are drained: let the next
                // one fill up. At 1,000 requests/s this turns 1,000 transactions a second into 5, which is most of the
                // ledger's CPU and, on a small machine, most of the proxy's tail latency (the writer competes for the
                // same cores).
                if (batch.Count == 0) await Task.Delay(_options.Block, stoppingToken);
                else if (batch.Count < _options.BatchSize && _options.Linger > TimeSpan.Zero) await Task.Delay(_options.Linger, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Unacknowledged events stay pending and are re-read from "0" after the pause (the streams are opened
                // again, which also recreates a group a flush of Redis took away).
                WriteFailures.Add(1);
                LogBatchFailed(logger, e.GetType().Name, e.Message, backoff.TotalMilliseconds);
                streams = null;
                try { await Task.Delay(backoff, stoppingToken); } catch (OperationCanceledException) { break; }
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 10_000));
            }
        }
    }

    /// <summary>One usage stream and where this writer is in it.</summary>
    private sealed class StreamCursor(string key, bool legacy)
    {
        public string Key { get; } = key;
        public bool Legacy { get; } = legacy;
        /// <summary>After a (re)start, first finish what this consumer read but never acknowledged.</summary>
        public bool DrainOwnPending { get; set; } = true;
        /// <summary>Only the leader runs this writer (one instance cluster-wide), so at the start of a term whatever another
        /// consumer still has pending was left by a previous leader, killed or deposed: take it now rather than after
        /// ClaimIdle. Should that leader still be finishing a batch, both writes are the same idempotent insert.</summary>
        public bool TakeOver { get; set; } = true;
    }

    private async Task<List<StreamCursor>> OpenStreamsAsync(CancellationToken ct)
    {
        var streams = new List<StreamCursor>(ProjectionKeys.ShardCount + 1);
        foreach (var shard in ProjectionKeys.Shards) streams.Add(new StreamCursor(keys.UsageStream(shard), legacy: false));
        // From "0": events the proxy wrote before the group existed are not skipped.
        await Task.WhenAll(streams.Select(s => redis.StreamCreateGroupAsync(s.Key, ProjectionKeys.UsageGroup, "0", ct)));
        await AddLegacyIfPresentAsync(streams, ct);
        return streams;
    }

    private async Task AddLegacyIfPresentAsync(List<StreamCursor> streams, CancellationToken ct)
    {
        if ((await redis.ExecuteAsync("EXISTS", [keys.LegacyUsageStream], ct)).AsInt64() == 0) return;
        await redis.StreamCreateGroupAsync(keys.LegacyUsageStream, ProjectionKeys.UsageGroup, "0", ct);
        streams.Add(new StreamCursor(keys.LegacyUsageStream, legacy: true));
    }

    private async Task<IReadOnlyList<StreamEntry>> ReadAsync(StreamCursor stream, bool claimDue, CancellationToken ct)
    {
        if (stream.DrainOwnPending)
        {
            var own = await ReadGroupAsync(stream.Key, "0", ct);
            if (own.Count > 0) return own;
            stream.DrainOwnPending = false;
        }
        if (stream.TakeOver || claimDue)
        {
            var claimed = await ClaimAsync(stream.Key, stream.TakeOver ? TimeSpan.Zero : _options.ClaimIdle, ct);
            // Claimed entries become this consumer's and are acknowledged after the write; claim again until none is left.
            if (claimed.Count > 0) return claimed;
            stream.TakeOver = false;
        }
        return await ReadGroupAsync(stream.Key, ">", ct);
    }

    private async Task AcknowledgeAsync(string stream, List<string> ids, CancellationToken ct)
    {
        await redis.StreamAckAsync(stream, ProjectionKeys.UsageGroup, ids, ct);
        // Persisted and acknowledged: drop them so the stream stays as long as the backlog.
        var del = new List<RedisArg>(ids.Count + 1) { stream };
        foreach (var id in ids) del.Add(id);
        await redis.ExecuteAsync("XDEL", del, ct);
    }

    /// <summary>The stream of the layout before hash tags is deleted once an upgrade's events in it are all written.</summary>
    private async Task DropDrainedLegacyAsync(List<StreamCursor> streams, List<(StreamCursor Stream, StreamEntry Entry)> reads, CancellationToken ct)
    {
        var legacy = streams.Find(s => s.Legacy);
        if (legacy is null || legacy.DrainOwnPending || legacy.TakeOver || reads.Exists(r => r.Stream == legacy)) return;
        if ((await redis.ExecuteAsync("XLEN", [legacy.Key], ct)).AsInt64() > 0) return;
        await redis.ExecuteAsync("DEL", [legacy.Key], ct);
        streams.Remove(legacy);
        LogLegacyDrained(logger, legacy.Key);
    }

    private async Task<IReadOnlyList<StreamEntry>> ReadGroupAsync(string stream, string from, CancellationToken ct) =>
        await redis.StreamReadGroupAsync(stream, ProjectionKeys.UsageGroup, _options.ConsumerName, _options.BatchSize, null, from, ct);

    private async Task<IReadOnlyList<StreamEntry>> ClaimAsync(string stream, TimeSpan minIdle, CancellationToken ct) =>
        (await redis.StreamAutoClaimAsync(stream, ProjectionKeys.UsageGroup, _options.ConsumerName, minIdle, "0-0", _options.BatchSize, ct)).Claimed;

    private async Task<IDisposable?> EnterGateAsync(CancellationToken ct) =>
        rebuildGate is null ? null : await rebuildGate.EnterAsync(ct);

    /// <summary>Writes a batch in one transaction (<see cref="UsageLedgerBatch"/>); replays are no-ops thanks to the unique
    /// request_id. Then refunds every recharge in the batch that the ledger already had (see <see cref="UsageOutbox"/>).</summary>
    internal async Task<int> PersistAsync(IReadOnlyList<StreamEntry> batch, CancellationToken ct)
    {
        var events = new List<UsageEvent>(batch.Count);
        foreach (var (id, fields) in batch)
        {
            UsageEvent ev;
            try { ev = UsageEvent.FromStreamFields(fields); }
            catch (FormatException) { LogPoison(logger, id); continue; }
            if (ev.RequestId.Length == 0) { LogPoison(logger, id); continue; }
            events.Add(ev);
        }
        var (inserted, insertedRecharges) = await UsageLedgerBatch.WriteWithRechargesAsync(dataSource, events, ct);
        // A recharge is the row only if it came first for its request id and that id was new; any other recharge
        // duplicated a row the ledger has, so its charge goes back (once per recharge id, so a re-read batch is safe).
        if (insertedRecharges.Count == 0 && !events.Any(e => e.RechargeId.Length > 0)) return inserted;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var ev in events)
        {
            var first = seen.Add(ev.RequestId);
            if (ev.RechargeId.Length == 0) continue;
            if (first && insertedRecharges.Contains(ev.RequestId)) continue;
            if (ev.RechargeMicros > 0 && await Gateway.Core.Enforcement.RechargeRefunds.RefundAsync(redis, keys, ev.UserId, ev.RechargeId, ev.RechargeMicros, ct))
            {
                RechargeRefunds.Add(1);
                LogRechargeRefunded(logger, ev.RequestId, ev.RechargeMicros);
            }
        }
        return inserted;
    }

    [LoggerMessage(202, LogLevel.Information, "Refunded a recharge of request {RequestId} ({Micros} micro-dollars): the ledger already had it")]
    private static partial void LogRechargeRefunded(ILogger logger, string requestId, long micros);

    [LoggerMessage(203, LogLevel.Information, "Wrote every usage event left in {Stream} (the usage stream before hash tags) and deleted it")]
    private static partial void LogLegacyDrained(ILogger logger, string stream);

    [LoggerMessage(200, LogLevel.Warning, "Persisting usage events failed ({Error}: {Message}); retrying in {DelayMs} ms")]
    private static partial void LogBatchFailed(ILogger logger, string error, string message, double delayMs);

    [LoggerMessage(201, LogLevel.Error, "Dropping unreadable usage event {EntryId}")]
    private static partial void LogPoison(ILogger logger, string entryId);
}
