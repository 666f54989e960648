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
/// The same call shares each account's requests in flight (accounts with maxConcurrent): every replica writes its
/// own count and reads the others', so maxConcurrent holds for the fleet, give or take one sync interval of the
/// others' new requests. The same call shares cooldowns: an account this replica cooled down (an upstream 429 with Retry-After, or its
/// circuit breaker opening) is written to the account's shared cooldown, and every other account's shared cooldown
/// is read back and applied here, so an account cools down on every replica within about two sync intervals.
/// A second call adds this replica's counts to every account's rolling windows (<see cref="UpstreamWindows"/>: 1m, 5h,
/// 1d, 7d) and reads back the totals of accounts with window limits, for selection by headroom (<see cref="UpstreamSelector"/>),
/// and which OAuth accounts are being refreshed.
/// </summary>
public sealed partial class AccountUsageSync(
    IRedisClient redis, ProjectionKeys keys, UpstreamCatalog catalog, IOptions<ProxyOptions> options, ILogger<AccountUsageSync> logger,
    TimeProvider? time = null)
    : BackgroundService
{
    private readonly TimeProvider _clock = time ?? TimeProvider.System;

    /// <summary>Shared hashes outlive their minute so a replica whose clock is a little behind still finds it.</summary>
    internal const int TtlSeconds = 120;

    // KEYS: U usage hashes (accounts with per-minute limits), C in-flight hashes (accounts with maxConcurrent), then one
    // cooldown string per account.
    // ARGV[1]: TTL of usage hashes in seconds, [2]: now (unix ms), [3]: U, [4]: C, [5]: this replica's id, [6]: how long
    // (ms) a replica's in-flight count is believed without a refresh; then a (requests, tokens) delta pair per usage key,
    // this replica's in-flight count per in-flight key, and per cooldown key the until (unix ms) to share, or 0.
    // Returns the usage totals (requests, tokens per usage key), the other replicas' requests in flight per in-flight
    // key, then each account's shared cooldown (unix ms, 0 = none).
    // An account with no new traffic is only read, so replicas that merely watch do not write; a cooldown is only
    // ever moved later, and expires when it ends. In-flight counts are stamped with the server's clock (TIME), so
    // replicas' clock skew does not matter; a replica that stopped refreshing (killed) stops counting after ARGV[6].
    internal static readonly LuaScript Script = new("""
        local ttl = tonumber(ARGV[1])
        local now = tonumber(ARGV[2])
        local u = tonumber(ARGV[3])
        local c = tonumber(ARGV[4])
        local rid = ARGV[5]
        local stale = tonumber(ARGV[6])
        local out = {}
        for i = 1, u do
          local key = KEYS[i]
          local dr = tonumber(ARGV[5 + 2 * i])
          local dt = tonumber(ARGV[6 + 2 * i])
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
        if c > 0 then
          local time = redis.call('TIME')
          local server = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
          for i = 1, c do
            local key = KEYS[u + i]
            redis.call('HSET', key, rid, ARGV[6 + 2 * u + i] .. ':' .. server)
            redis.call('PEXPIRE', key, stale * 2)
            local all = redis.call('HGETALL', key)
            local others = 0
            for j = 1, #all, 2 do
              if all[j] ~= rid then
                local v = all[j + 1]
                local sep = string.find(v, ':', 1, true)
                local n = sep and tonumber(string.sub(v, 1, sep - 1)) or 0
                local at = sep and tonumber(string.sub(v, sep + 1)) or 0
                if at >= server - stale then others = others + n else redis.call('HDEL', key, all[j]) end
              end
            end
            out[#out + 1] = others
          end
        end
        local first = 6 + 2 * u + c
        for i = u + c + 1, #KEYS do
          local key = KEYS[i]
          local want = tonumber(ARGV[first + (i - u - c)])
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

    /// <summary>How long another replica's in-flight count is believed without a refresh (it may have been killed).</summary>
    internal static int InFlightStaleMilliseconds(int syncMilliseconds) => Math.Max(5_000, 5 * syncMilliseconds);

    private readonly string _replicaId = Guid.NewGuid().ToString("N");

    // Reused by every sync; syncs never overlap (one loop), so no call still holds them.
    private readonly List<RedisArg> _keys = [];
    private readonly List<RedisArg> _args = [];
    private readonly List<UpstreamHealth> _healths = [];
    private readonly List<PendingUsage> _pending = [];
    private readonly List<UpstreamHealth> _cooling = [];
    private readonly List<UpstreamHealth> _concurrent = [];
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
        var limits = await SyncLimitsAsync(snapshot, cancellationToken).ConfigureAwait(false);
        var windows = await SyncWindowsAsync(snapshot, cancellationToken).ConfigureAwait(false);
        if (limits && windows && _failing)
        {
            _failing = false;
            Log.SyncResumed(logger);
        }
        return limits && windows;
    }

    private readonly List<WindowDelta> _windowDeltas = [];
    private readonly List<UpstreamHealth> _windowHealths = [];
    private readonly List<string> _leaseKeys = [];
    private readonly List<UpstreamHealth> _oauthHealths = [];

    /// <summary>
    /// Adds this replica's requests and tokens to every account's rolling windows (<see cref="UpstreamWindows"/>) and
    /// reads back the totals of the accounts with window limits (spec.windows) for selection by headroom; reads which
    /// OAuth accounts the operator is refreshing (their refresh lease). An account with neither new traffic nor window
    /// limits is left out, so an idle fleet without windows costs nothing here.
    /// </summary>
    private async Task<bool> SyncWindowsAsync(UpstreamSnapshot snapshot, CancellationToken cancellationToken)
    {
        _windowDeltas.Clear();
        _windowHealths.Clear();
        _leaseKeys.Clear();
        _oauthHealths.Clear();
        _seen.Clear();
        foreach (var account in snapshot.Accounts)
        {
            if (account.Disabled || !_seen.Add(account.Name) || !catalog.TryGetHealth(account.Name, out var health)) continue;
            if (account.OAuth)
            {
                _leaseKeys.Add(keys.UpstreamRefreshLease(account.Name));
                _oauthHealths.Add(health);
            }
            var (requests, tokens) = health.TakeWindowDelta();
            if (requests == 0 && tokens == 0 && account.Windows is not { Count: > 0 }) continue;
            _windowDeltas.Add(new WindowDelta(account.Name, requests, tokens));
            _windowHealths.Add(health);
        }
        if (_windowDeltas.Count == 0 && _leaseKeys.Count == 0) return true;
        try
        {
            var totals = await UpstreamWindows.AddAndReadAsync(redis, keys, _windowDeltas, cancellationToken).ConfigureAwait(false);
            // Pushed: from here a failure must not put the counts back (they are in Redis).
            _windowDeltas.Clear();
            // Each OAuth account's keys carry its own hash tag: one MGET per slot.
            var refreshing = _leaseKeys.Count == 0 ? null : await redis.MGetPerSlotAsync(_leaseKeys, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < _windowHealths.Count; i++) _windowHealths[i].ApplyWindows(totals[i]);
            for (var i = 0; i < _oauthHealths.Count; i++)
                _oauthHealths[i].SetRefreshing(refreshing is not null && i < refreshing.Count && !refreshing[i].IsNull);
            return true;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Counts not pushed go with the next sync. A timeout after Redis applied them counts them twice, which errs
            // on the side of the limits.
            for (var i = 0; i < _windowDeltas.Count; i++)
                _windowHealths[i].ReturnWindowDelta(_windowDeltas[i].Requests, _windowDeltas[i].Tokens);
            OnFailure(ex);
            return false;
        }
    }

    /// <summary>The per-minute limits, requests in flight and cooldowns (<see cref="Script"/>).</summary>
    private async Task<bool> SyncLimitsAsync(UpstreamSnapshot snapshot, CancellationToken cancellationToken)
    {
        _keys.Clear();
        _args.Clear();
        _healths.Clear();
        _pending.Clear();
        _cooling.Clear();
        _concurrent.Clear();
        _shared.Clear();
        _seen.Clear();
        foreach (var account in snapshot.Accounts)
        {
            if (account.Disabled || !_seen.Add(account.Name) || !catalog.TryGetHealth(account.Name, out var health)) continue;
            _cooling.Add(health);
            if (account.Limits is not { } limits) continue;
            if (limits.MaxConcurrent is > 0) _concurrent.Add(health);
            if (limits.RequestsPerMinute is not > 0 && limits.TokensPerMinute is not > 0) continue;
            _healths.Add(health);
            _pending.Add(health.TakePending());
        }
        if (_cooling.Count == 0) return true;
        _args.Add(TtlSeconds);
        _args.Add(_clock.GetUtcNow().ToUnixTimeMilliseconds());
        _args.Add(_healths.Count);
        _args.Add(_concurrent.Count);
        _args.Add(_replicaId);
        _args.Add(InFlightStaleMilliseconds(Math.Max(options.Value.AccountUsageSyncMilliseconds, 50)));
        for (var i = 0; i < _healths.Count; i++)
        {
            _keys.Add(keys.UpstreamUsage(_healths[i].Name, _pending[i].Minute));
            _args.Add(_pending[i].RequestsDelta);
            _args.Add(_pending[i].TokensDelta);
        }
        foreach (var health in _concurrent)
        {
            _keys.Add(keys.UpstreamInFlight(health.Name));
            _args.Add(health.InFlight);
        }
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
        if (totals.Count < 2 * _healths.Count + _concurrent.Count + _cooling.Count)
        {
            Restore();
            OnFailure(new InvalidOperationException("The usage script returned fewer values than accounts."));
            return false;
        }
        for (var i = 0; i < _healths.Count; i++)
            _healths[i].ApplyShared(_pending[i], totals[2 * i].AsInt64(), totals[2 * i + 1].AsInt64());
        for (var i = 0; i < _concurrent.Count; i++)
            _concurrent[i].ApplyOthersInFlight(totals[2 * _healths.Count + i].AsInt64());
        for (var i = 0; i < _cooling.Count; i++)
        {
            var until = totals[2 * _healths.Count + _concurrent.Count + i].AsInt64();
            if (until > 0) _cooling[i].ApplySharedCooldown(until);
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
