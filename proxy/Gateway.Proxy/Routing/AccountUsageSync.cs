using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Proxy.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Shares the upstream accounts' per-minute request and token counts between proxy replicas, off the
/// request path: every <see cref="ProxyOptions.AccountUsageSyncMilliseconds"/> one Lua call adds this
/// replica's new counts of every account with requestsPerMinute/tokensPerMinute to the account's
/// shared hash for the current UTC minute and returns the totals, which <see cref="UpstreamHealth.UnderLimits"/>
/// then adds to the counts made since. Between two syncs a replica does not see the others' new
/// traffic, so together they can overshoot a limit by about one interval of the other replicas' traffic.
/// If Redis cannot be reached the sync is skipped (logged once per outage) and routing falls back to
/// this replica's own counts; requests are never delayed or failed by it.
/// The same call shares cooldowns: an account this replica cooled down (an upstream 429 with Retry-After, or its
/// circuit breaker opening) is written to the account's shared cooldown, and every other account's shared cooldown
/// is read back and applied here, so an account cools down on every replica within about two sync intervals.
/// </summary>
public sealed partial class AccountUsageSync(
    IRedisClient redis, ProjectionKeys keys, UpstreamCatalog catalog, IOptions<ProxyOptions> options, ILogger<AccountUsageSync> logger,
    TimeProvider? time = null)
    : BackgroundService
{
    private readonly TimeProvider _clock = time ?? TimeProvider.System;

    /// <summary>Shared hashes outlive their minute so a replica whose clock is a little behind still finds it.</summary>
    internal const int TtlSeconds = 120;

    // KEYS: U usage hashes (accounts with per-minute limits), then one cooldown string per account.
    // ARGV[1]: TTL of usage hashes in seconds, ARGV[2]: now (unix ms), ARGV[3]: U, then a (requests, tokens) delta
    // pair per usage key, then per cooldown key the until (unix ms) this replica wants to share, or 0.
    // Returns the usage totals (requests, tokens per usage key), then each account's shared cooldown (unix ms, 0 = none).
    // An account with no new traffic is only read, so replicas that merely watch do not write; a cooldown is only
    // ever moved later, and expires when it ends.
    internal static readonly LuaScript Script = new("""
        local ttl = tonumber(ARGV[1])
        local now = tonumber(ARGV[2])
        local u = tonumber(ARGV[3])
        local out = {}
        for i = 1, u do
          local key = KEYS[i]
          local dr = tonumber(ARGV[2 + 2 * i])
          local dt = tonumber(ARGV[3 + 2 * i])
          local r, t
          if dr > 0 or dt > 0 then
            r = redis.call('HINCRBY', key, 'requests', dr)
            t = redis.call('HINCRBY', key, 'tokens', dt)
            redis.call('EXPIRE', key, ttl)
          else
            local v = redis.call('HMGET', key, 'requests', 'tokens')
            r = tonumber(v[1]) or 0
            t = tonumber(v[2]) or 0
          end
          out[2 * i - 1] = r
          out[2 * i] = t
        end
        for i = u + 1, #KEYS do
          local key = KEYS[i]
          local want = tonumber(ARGV[3 + 2 * u + (i - u)])
          local current = tonumber(redis.call('GET', key)) or 0
          if want > now and want > current then
            redis.call('SET', key, want, 'PX', want - now)
            current = want
          end
          if current <= now then current = 0 end
          out[#out + 1] = current
        end
        return out
        """);

    // Reused by every sync; syncs never overlap (one loop), so no call still holds them.
    private readonly List<RedisArg> _keys = [];
    private readonly List<RedisArg> _args = [];
    private readonly List<UpstreamHealth> _healths = [];
    private readonly List<PendingUsage> _pending = [];
    private readonly List<UpstreamHealth> _cooling = [];
    private readonly List<long> _shared = [];
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private bool _failing;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.AccountUsageSyncMilliseconds;
        if (interval <= 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(interval));
        try
        {
            do
            {
                try
                {
                    await SyncOnceAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Whatever went wrong (e.g. an unexpected reply), the loop must live on: an exception
                    // leaving ExecuteAsync would stop the host.
                    OnFailure(ex);
                }
            } while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (Exception) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: a sync cut short is simply not retried.
        }
    }

    /// <summary>One sync over the upstream list requests last loaded; false when Redis could not be used this time.</summary>
    /// <remarks>The sync does not load or refresh the list itself: a background load would make requests use
    /// a list that is stale-while-revalidating where they would otherwise wait for the fresh one. Health
    /// objects outlive reloads, so a stale list only delays accounts added since. A replica that has served
    /// nothing yet has no list, so its first requests count only its own traffic until the next sync.</remarks>
    internal Task<bool> SyncOnceAsync(CancellationToken cancellationToken) =>
        catalog.Current is { } snapshot ? SyncOnceAsync(snapshot, cancellationToken) : Task.FromResult(true);

    /// <summary>One sync over the accounts of <paramref name="snapshot"/>; false when Redis could not be used this time.</summary>
    internal async Task<bool> SyncOnceAsync(UpstreamSnapshot snapshot, CancellationToken cancellationToken)
    {
        _keys.Clear();
        _args.Clear();
        _healths.Clear();
        _pending.Clear();
        _cooling.Clear();
        _shared.Clear();
        _seen.Clear();
        _args.Add(TtlSeconds);
        _args.Add(_clock.GetUtcNow().ToUnixTimeMilliseconds());
        _args.Add(0);   // U, set below
        foreach (var account in snapshot.Accounts)
        {
            if (account.Disabled || !_seen.Add(account.Name) || !catalog.TryGetHealth(account.Name, out var health)) continue;
            _cooling.Add(health);
            if (account.Limits is not { } limits) continue;
            if (limits.RequestsPerMinute is not > 0 && limits.TokensPerMinute is not > 0) continue;
            var pending = health.TakePending();
            _keys.Add(keys.UpstreamUsage(account.Name, pending.Minute));
            _args.Add(pending.RequestsDelta);
            _args.Add(pending.TokensDelta);
            _healths.Add(health);
            _pending.Add(pending);
        }
        if (_cooling.Count == 0) return true;
        _args[2] = _healths.Count;
        foreach (var health in _cooling)
        {
            var until = health.TakeSharedCooldown();
            _keys.Add(keys.UpstreamCooldown(health.Name));
            _args.Add(until);
            _shared.Add(until);
        }

        RespValue reply;
        try
        {
            reply = await redis.EvalAsync(Script, _keys, _args, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The deltas stay pending and go with the next sync, and so do the cooldowns. A timeout after Redis
            // applied them counts them twice, which errs on the side of the limit.
            Restore();
            OnFailure(ex);
            return false;
        }
        var totals = reply.Items;
        if (totals.Count < 2 * _healths.Count + _cooling.Count)
        {
            Restore();
            OnFailure(new InvalidOperationException("The usage script returned fewer values than accounts."));
            return false;
        }
        for (var i = 0; i < _healths.Count; i++)
            _healths[i].ApplyShared(_pending[i], totals[2 * i].AsInt64(), totals[2 * i + 1].AsInt64());
        for (var i = 0; i < _cooling.Count; i++)
        {
            var until = totals[2 * _healths.Count + i].AsInt64();
            if (until > 0) _cooling[i].ApplySharedCooldown(until);
        }
        if (_failing)
        {
            _failing = false;
            Log.SyncResumed(logger);
        }
        return true;
    }

    private void Restore()
    {
        for (var i = 0; i < _cooling.Count; i++)
        {
            if (_shared[i] > 0) _cooling[i].ReturnSharedCooldown(_shared[i]);
        }
    }

    private void OnFailure(Exception ex)
    {
        if (_failing) return;
        _failing = true;
        // The type only: messages can carry addresses or script text, never needed to act on this.
        Log.SyncFailed(logger, ex.GetType().Name);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 30, Level = LogLevel.Warning,
            Message = "Cannot share upstream account usage with the other replicas ({Error}); account per-minute limits use this replica's counts until Redis answers")]
        public static partial void SyncFailed(ILogger logger, string error);

        [LoggerMessage(EventId = 31, Level = LogLevel.Information, Message = "Sharing upstream account usage with the other replicas again")]
        public static partial void SyncResumed(ILogger logger);
    }
}
