using System.Collections.Concurrent;
using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Proxy.Routing;

/// <summary>
/// Asks the operator to refresh an OAuth account's access token now, when its upstream answered 401 (the token was
/// revoked or expired early): one SET of <see cref="ProjectionKeys.UpstreamRefreshRequest"/>, sent off the request
/// path and at most once per <see cref="MinInterval"/> per account from this replica. The operator's refresher
/// reads it on its next pass. A failure to reach Redis is ignored: the refresher still refreshes ahead of expiry.
/// </summary>
public sealed partial class OAuthRefreshRequests(IRedisClient redis, ProjectionKeys keys, ILogger<OAuthRefreshRequests> logger, TimeProvider? time = null)
{
    public static readonly TimeSpan MinInterval = TimeSpan.FromSeconds(5);
    private const int TtlSeconds = 600;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, long> _lastSent = new(StringComparer.Ordinal);

    /// <summary>Requests a refresh of <paramref name="account"/>; returns the task of the write (tests await it).</summary>
    public Task RequestAsync(string account)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        // The replica that moves the stamp forward sends; concurrent 401s of the same account send once.
        var last = _lastSent.GetOrAdd(account, 0L);
        if (now - last < (long)MinInterval.TotalMilliseconds || !_lastSent.TryUpdate(account, now, last)) return Task.CompletedTask;
        Log.Requested(logger, account);
        return SendAsync(account, now);
    }

    private async Task SendAsync(string account, long now)
    {
        try
        {
            await redis.ExecuteAsync("SET", [keys.UpstreamRefreshRequest(account), now, "EX", TtlSeconds], CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RedisConnectionException or RedisServerException or TimeoutException or OperationCanceledException or IOException)
        {
            Log.Failed(logger, account, e.GetType().Name);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 40, Level = LogLevel.Warning, Message = "Upstream {Upstream} rejected its OAuth access token (401); asking the operator to refresh it now")]
        public static partial void Requested(ILogger logger, string upstream);

        [LoggerMessage(EventId = 41, Level = LogLevel.Warning, Message = "Could not ask the operator to refresh {Upstream} ({Error}); it refreshes ahead of expiry anyway")]
        public static partial void Failed(ILogger logger, string upstream, string error);
    }
}
