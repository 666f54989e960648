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

    /// <summary>
    /// One statement per batch: the usage rows, their consume entries, the keys' last use, and the daily
    /// roll-ups. The roll-ups add only what <c>ins</c> and <c>led</c> return — the rows this statement really
    /// inserted — so a redelivered event (a conflict, nothing returned) is never counted twice, and they
    /// commit or roll back with the rows they sum. Groups are upserted in key order so two concurrent
    /// writers lock roll-up rows in the same order (no deadlock).
    /// </summary>
    private const string PersistSql = $"""
        WITH ins AS (
            INSERT INTO usage_log (request_id, api_key_id, key_version, user_id, upstream, model, route,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost, price_version,
                started_at, duration_ms, ttfb_ms, status, estimated, streamed, client_ip, error_code)
            SELECT * FROM unnest(@req, @key, @kver, @user, @up, @model, @route, @tin, @tcached, @tcw, @tout,
                @cost, @pv, @started, @dur, @ttfb, @status, @est, @streamed, @ip, @err)
            ON CONFLICT (request_id) DO NOTHING
            RETURNING request_id, user_id, api_key_id, upstream, model, input_tokens, cached_input_tokens,
                cache_write_tokens, output_tokens, cost, price_version, started_at, status, streamed
        ), led AS (
            INSERT INTO ledger_entries (user_id, kind, amount, request_id, api_key_id, price_version, created_at)
            SELECT ins.user_id, 'consume', -ins.cost, ins.request_id, ins.api_key_id, ins.price_version, ins.started_at
            FROM ins JOIN users ON users.id = ins.user_id
            WHERE ins.cost > 0
            ON CONFLICT (request_id) WHERE kind = 'consume' DO NOTHING
            RETURNING user_id, amount, created_at
        ), touched AS (
            UPDATE api_keys SET last_used_at = GREATEST(api_keys.last_used_at, t.last)
            FROM (SELECT api_key_id, max(started_at) AS last FROM ins WHERE api_key_id IS NOT NULL GROUP BY api_key_id) t
            WHERE api_keys.id = t.api_key_id
            RETURNING 1
        ), daily AS (
            INSERT INTO usage_daily AS d (user_id, day, api_key_id, model, upstream, streamed, failed, requests, errors,
                input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, cost)
            SELECT user_id, (started_at AT TIME ZONE 'UTC')::date, api_key_id, model, upstream, streamed, {FailedPredicate},
                count(*), CASE WHEN {FailedPredicate} THEN count(*) ELSE 0 END,
                sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens), sum(output_tokens), sum(cost)
            FROM ins
            GROUP BY 1, 2, 3, 4, 5, 6, 7
            ORDER BY 1, 2, 3, 4, 5, 6, 7
            ON CONFLICT ON CONSTRAINT usage_daily_key DO UPDATE SET
                requests = d.requests + EXCLUDED.requests, errors = d.errors + EXCLUDED.errors,
                input_tokens = d.input_tokens + EXCLUDED.input_tokens,
                cached_input_tokens = d.cached_input_tokens + EXCLUDED.cached_input_tokens,
                cache_write_tokens = d.cache_write_tokens + EXCLUDED.cache_write_tokens,
                output_tokens = d.output_tokens + EXCLUDED.output_tokens, cost = d.cost + EXCLUDED.cost
            RETURNING 1
        ), consumed AS (
            INSERT INTO ledger_daily AS l (user_id, day, amount, entries, last_at)
            SELECT user_id, (created_at AT TIME ZONE 'UTC')::date, sum(amount), count(*), max(created_at)
            FROM led GROUP BY 1, 2 ORDER BY 1, 2
            ON CONFLICT (user_id, day) DO UPDATE SET amount = l.amount + EXCLUDED.amount,
                entries = l.entries + EXCLUDED.entries, last_at = GREATEST(l.last_at, EXCLUDED.last_at)
            RETURNING 1
        )
        SELECT count(*) FROM ins
        """;

    private const string FailedPredicate = Gateway.Core.Storage.Migrations.M0003_UsageDetail.FailedPredicate;

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
        var ip = new string?[n]; var err = new string?[n];
        for (var i = 0; i < n; i++)
        {
            var e = events[i];
            req[i] = e.RequestId; key[i] = Guid.TryParse(e.KeyId, out var k) ? k : null; kver[i] = e.KeyVersion;
            user[i] = Guid.TryParse(e.UserId, out var u) ? u : null; up[i] = e.Upstream; model[i] = e.Model; route[i] = e.Route;
            tin[i] = e.Tokens.Input; tcached[i] = e.Tokens.CachedInput; tcw[i] = e.Tokens.CacheWrite; tout[i] = e.Tokens.Output;
            cost[i] = e.Cost; pv[i] = e.PriceVersion; started[i] = e.StartedAt.UtcDateTime; dur[i] = e.DurationMs;
            ttfb[i] = e.TimeToFirstByteMs; status[i] = e.Status; est[i] = e.Estimated; streamed[i] = e.Streamed;
            ip[i] = e.ClientIp.Length == 0 ? null : e.ClientIp; err[i] = e.ErrorCode.Length == 0 ? null : e.ErrorCode;
        }

        await using var conn = await dataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        await using var cmd = new NpgsqlCommand(PersistSql, conn, tx);
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
        cmd.Parameters.Add(new NpgsqlParameter("ip", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = ip });
        cmd.Parameters.Add(new NpgsqlParameter("err", NpgsqlDbType.Array | NpgsqlDbType.Text) { Value = err });
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
