using System.Diagnostics.Metrics;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Usage;
using Npgsql;
using NpgsqlTypes;

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
    public TimeSpan Block { get; set; } = TimeSpan.FromSeconds(1);
    /// <summary>Entries a dead consumer left pending longer than this are claimed.</summary>
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
/// Moves usage events from the Redis stream into <c>usage_log</c> and the ledger. At-least-once from
/// the stream, exactly-once in PostgreSQL (unique request_id), acknowledged only after commit: if
/// PostgreSQL is down the events wait in the stream and nothing is lost.
/// </summary>
public sealed partial class LedgerWriter(
    Func<CancellationToken, Task<IRedisClient>> openBlockingClient,
    IRedisClient redis,
    NpgsqlDataSource dataSource,
    ProjectionKeys keys,
    Microsoft.Extensions.Options.IOptions<LedgerOptions> options,
    ILogger<LedgerWriter> logger) : BackgroundService
{
    private static readonly Meter LedgerMeter = new("TokenGate.Ledger");
    private static readonly Counter<long> EventsWritten = LedgerMeter.CreateCounter<long>("tokengate_ledger_events_total", description: "Usage events persisted to PostgreSQL.");
    private static readonly Counter<long> WriteFailures = LedgerMeter.CreateCounter<long>("tokengate_ledger_write_failures_total", description: "Failed attempts to persist a batch of usage events.");

    private readonly LedgerOptions _options = options.Value;
    private long _persisted;

    /// <summary>Events persisted by this instance.</summary>
    public long Persisted => Interlocked.Read(ref _persisted);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromMilliseconds(200);
        var groupReady = false;
        var drainOwnPending = true;
        IRedisClient? blockingRedis = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                // Blocking reads get a connection of their own so they never stall other commands.
                blockingRedis ??= await openBlockingClient(stoppingToken);
                if (!groupReady) { await EnsureGroupAsync(stoppingToken); groupReady = true; }

                IReadOnlyList<StreamEntry> batch;
                if (drainOwnPending)
                {
                    // After a restart, first finish what this consumer read but never acknowledged.
                    batch = await ReadAsync(redis, "0", block: false, stoppingToken);
                    if (batch.Count == 0) { drainOwnPending = false; batch = await ClaimAsync(stoppingToken); }
                }
                else
                {
                    batch = await ReadAsync(blockingRedis!, ">", block: true, stoppingToken);
                    if (batch.Count == 0) batch = await ClaimAsync(stoppingToken);
                }
                if (batch.Count == 0) continue;

                await PersistAsync(batch, stoppingToken);
                var ids = new List<string>(batch.Count);
                foreach (var e in batch) ids.Add(e.Id);
                await redis.StreamAckAsync(keys.UsageStream, ProjectionKeys.UsageGroup, ids, stoppingToken);
                // Persisted and acknowledged: drop them so the stream stays as long as the backlog.
                var del = new List<RedisArg>(ids.Count + 1) { keys.UsageStream };
                foreach (var id in ids) del.Add(id);
                await redis.ExecuteAsync("XDEL", del, stoppingToken);
                Interlocked.Add(ref _persisted, batch.Count);
                EventsWritten.Add(batch.Count);
                backoff = TimeSpan.FromMilliseconds(200);
                // A short batch means the stream is drained: let the next one fill up. At 1,000 requests/s
                // this turns 1,000 transactions a second into 5, which is most of the ledger's CPU and, on
                // a small machine, most of the proxy's tail latency (the writer competes for the same cores).
                if (batch.Count < _options.BatchSize && _options.Linger > TimeSpan.Zero)
                    await Task.Delay(_options.Linger, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                // Unacknowledged events stay pending and are re-read from "0" after the pause.
                WriteFailures.Add(1);
                LogBatchFailed(logger, e.GetType().Name, e.Message, backoff.TotalMilliseconds);
                drainOwnPending = true;
                if (e is RedisServerException rse && rse.HasPrefix("NOGROUP")) groupReady = false;
                try { await Task.Delay(backoff, stoppingToken); } catch (OperationCanceledException) { break; }
                backoff = TimeSpan.FromMilliseconds(Math.Min(backoff.TotalMilliseconds * 2, 10_000));
            }
        }
        if (blockingRedis is not null) await blockingRedis.DisposeAsync();
    }

    // From "0": events the proxy wrote before the group existed are not skipped.
    private Task EnsureGroupAsync(CancellationToken ct) =>
        redis.StreamCreateGroupAsync(keys.UsageStream, ProjectionKeys.UsageGroup, "0", ct);

    private async Task<IReadOnlyList<StreamEntry>> ReadAsync(IRedisClient client, string from, bool block, CancellationToken ct) =>
        await client.StreamReadGroupAsync(keys.UsageStream, ProjectionKeys.UsageGroup, _options.ConsumerName, _options.BatchSize,
            block ? _options.Block : null, from, ct);

    private async Task<IReadOnlyList<StreamEntry>> ClaimAsync(CancellationToken ct) =>
        (await redis.StreamAutoClaimAsync(keys.UsageStream, ProjectionKeys.UsageGroup, _options.ConsumerName, _options.ClaimIdle, "0-0", _options.BatchSize, ct)).Claimed;

    /// <summary>Writes a batch in one transaction; replays are no-ops thanks to the unique request_id.</summary>
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
        if (events.Count == 0) return 0;

        int n = events.Count;
        var req = new string[n]; var key = new Guid?[n]; var kver = new int[n]; var user = new Guid?[n];
        var up = new string[n]; var model = new string[n]; var route = new string[n];
        var tin = new long[n]; var tcached = new long[n]; var tcw = new long[n]; var tout = new long[n];
        var cost = new decimal[n]; var pv = new string[n]; var started = new DateTime[n];
        var dur = new int[n]; var ttfb = new int?[n]; var status = new int[n]; var est = new bool[n]; var streamed = new bool[n];
        for (var i = 0; i < n; i++)
        {
            var e = events[i];
            req[i] = e.RequestId; key[i] = Guid.TryParse(e.KeyId, out var k) ? k : null; kver[i] = e.KeyVersion;
            user[i] = Guid.TryParse(e.UserId, out var u) ? u : null; up[i] = e.Upstream; model[i] = e.Model; route[i] = e.Route;
            tin[i] = e.Tokens.Input; tcached[i] = e.Tokens.CachedInput; tcw[i] = e.Tokens.CacheWrite; tout[i] = e.Tokens.Output;
            cost[i] = e.Cost; pv[i] = e.PriceVersion; started[i] = e.StartedAt.UtcDateTime; dur[i] = e.DurationMs;
            ttfb[i] = e.TimeToFirstByteMs; status[i] = e.Status; est[i] = e.Estimated; streamed[i] = e.Streamed;
        }

        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand("""
            WITH ins AS (
                INSERT INTO usage_log (request_id, api_key_id, key_version, user_id, upstream, model, route,
                    input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost, price_version,
                    started_at, duration_ms, ttfb_ms, status, estimated, streamed)
                SELECT * FROM unnest(@req, @key, @kver, @user, @up, @model, @route, @tin, @tcached, @tcw, @tout,
                    @cost, @pv, @started, @dur, @ttfb, @status, @est, @streamed)
                ON CONFLICT (request_id) DO NOTHING
                RETURNING request_id, user_id, api_key_id, cost, price_version, started_at
            ), led AS (
                INSERT INTO ledger_entries (user_id, kind, amount, request_id, api_key_id, price_version, created_at)
                SELECT ins.user_id, 'consume', -ins.cost, ins.request_id, ins.api_key_id, ins.price_version, ins.started_at
                FROM ins JOIN users ON users.id = ins.user_id
                WHERE ins.cost > 0
                ON CONFLICT (request_id) WHERE kind = 'consume' DO NOTHING
                RETURNING 1
            ), touched AS (
                UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, t.last)
                FROM (SELECT api_key_id, max(started_at) AS last FROM ins WHERE api_key_id IS NOT NULL GROUP BY api_key_id) t
                WHERE api_keys.id = t.api_key_id
                RETURNING 1
            )
            SELECT count(*) FROM ins
            """, conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter("req", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = req });
        cmd.Parameters.Add(new NpgsqlParameter("key", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = key });
        cmd.Parameters.Add(new NpgsqlParameter("kver", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = kver });
        cmd.Parameters.Add(new NpgsqlParameter("user", NpgsqlDbType.Array | NpgsqlDbType.Uuid) { Value = user });
        cmd.Parameters.Add(new NpgsqlParameter("up", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = up });
        cmd.Parameters.Add(new NpgsqlParameter("model", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = model });
        cmd.Parameters.Add(new NpgsqlParameter("route", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = route });
        cmd.Parameters.Add(new NpgsqlParameter("tin", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tin });
        cmd.Parameters.Add(new NpgsqlParameter("tcached", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tcached });
        cmd.Parameters.Add(new NpgsqlParameter("tcw", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tcw });
        cmd.Parameters.Add(new NpgsqlParameter("tout", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { Value = tout });
        cmd.Parameters.Add(new NpgsqlParameter("cost", NpgsqlDbType.Array | NpgsqlDbType.Numeric) { Value = cost });
        cmd.Parameters.Add(new NpgsqlParameter("pv", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = pv });
        cmd.Parameters.Add(new NpgsqlParameter("started", NpgsqlDbType.Array | NpgsqlDbType.TimestampTz) { Value = started });
        cmd.Parameters.Add(new NpgsqlParameter("dur", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = dur });
        cmd.Parameters.Add(new NpgsqlParameter("ttfb", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = ttfb });
        cmd.Parameters.Add(new NpgsqlParameter("status", NpgsqlDbType.Array | NpgsqlDbType.Integer) { Value = status });
        cmd.Parameters.Add(new NpgsqlParameter("est", NpgsqlDbType.Array | NpgsqlDbType.Boolean) { Value = est });
        cmd.Parameters.Add(new NpgsqlParameter("streamed", NpgsqlDbType.Array | NpgsqlDbType.Boolean) { Value = streamed });
        // Prepared once per physical connection (Npgsql keeps it across pool rentals): planning this
        // statement cost PostgreSQL more than inserting a small batch.
        await cmd.PrepareAsync(ct);
        var inserted = Convert.ToInt32(await cmd.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        await tx.CommitAsync(ct);
        return inserted;
    }

    [LoggerMessage(200, LogLevel.Warning, "Persisting usage events failed ({Error}: {Message}); retrying in {DelayMs} ms")]
    private static partial void LogBatchFailed(ILogger logger, string error, string message, double delayMs);

    [LoggerMessage(201, LogLevel.Error, "Dropping unreadable usage event {EntryId}")]
    private static partial void LogPoison(ILogger logger, string entryId);
}
