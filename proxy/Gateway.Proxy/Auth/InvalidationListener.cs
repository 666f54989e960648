using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Proxy.Routing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gateway.Proxy.Auth;

/// <summary>
/// Subscribes to the projection's invalidation channel and drops the matching cache entries, so a
/// revocation or policy change reaches this process within one pub/sub hop. After a reconnect every
/// cache is dropped, since messages may have been missed while disconnected.
/// </summary>
public sealed partial class InvalidationListener(IRedisClient redis, ProjectionKeys keys, PolicyCache policies, UpstreamCatalog catalog, ILogger<InvalidationListener> logger)
    : BackgroundService
{
    private IAsyncDisposable? _subscription;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        redis.Reconnected += OnReconnected;
        var delay = TimeSpan.FromMilliseconds(100);
        // Redis may be down at start-up: keep trying; until subscribed, the cache TTL bounds staleness.
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                _subscription = await redis.SubscribeAsync(keys.InvalidationChannel, OnMessage, stoppingToken).ConfigureAwait(false);
                // Anything cached before the subscription was live may be stale.
                policies.Clear();
                catalog.Invalidate();
                Log.Subscribed(logger, keys.InvalidationChannel);
                return;
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is RedisConnectionException or RedisServerException or TimeoutException)
            {
                Log.SubscribeFailed(logger, ex.Message);
                await Task.Delay(delay, stoppingToken).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 5000));
            }
        }
    }

    private void OnMessage(string channel, string message)
    {
        policies.Invalidate(message);
        if (message is Invalidation.Upstreams or Invalidation.All) catalog.Invalidate();
    }

    private void OnReconnected()
    {
        policies.Clear();
        catalog.Invalidate();
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        redis.Reconnected -= OnReconnected;
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        if (_subscription is not null) await _subscription.DisposeAsync().ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Listening for invalidations on {Channel}")]
        public static partial void Subscribed(ILogger logger, string channel);

        [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Cannot subscribe to invalidations yet: {Error}")]
        public static partial void SubscribeFailed(ILogger logger, string error);
    }
}
