using Microsoft.Extensions.Logging;

namespace Gateway.Core.Redis;

/// <summary>
/// Keeps one <see cref="RespConnection"/> alive: connects, waits for it to break, reconnects with
/// exponential backoff and jitter. While there is no healthy connection <see cref="Current"/> is null,
/// so callers fail fast instead of queueing behind an outage.
/// </summary>
internal sealed class ConnectionSupervisor
{
    private readonly RespClientOptions _options;
    private readonly ILogger _logger;
    private readonly string _role;
    private readonly bool _subscriber;
    private readonly Action<RespValue>? _onPush;
    private readonly Func<RespConnection, bool, CancellationToken, Task>? _onConnected;
    private readonly Func<RespClientOptions>? _chooseNode;
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstAttempt = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RespConnection? _current;
    private Task _loop = Task.CompletedTask;

    /// <param name="onConnected">Runs on every new connection before it is considered established
    /// (e.g. to re-subscribe); the flag is true for reconnects. A failure breaks that connection.</param>
    /// <param name="chooseNode">When set, picks the server (options) for every connect attempt instead of
    /// <paramref name="options"/>: a Redis Cluster subscriber moves to another node when its node goes away.</param>
    public ConnectionSupervisor(
        RespClientOptions options,
        ILogger logger,
        string role,
        bool subscriber,
        Action<RespValue>? onPush,
        Func<RespConnection, bool, CancellationToken, Task>? onConnected,
        Func<RespClientOptions>? chooseNode = null)
    {
        _chooseNode = chooseNode;
        _options = options;
        _logger = logger;
        _role = role;
        _subscriber = subscriber;
        _onPush = onPush;
        _onConnected = onConnected;
        // Nobody may await a failed first attempt (constructor-started clients); observe it so it is
        // not reported as an unobserved task exception.
        _firstAttempt.Task.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
            TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>The healthy connection, or null while (re)connecting.</summary>
    public RespConnection? Current => Volatile.Read(ref _current) is { IsHealthy: true } c ? c : null;

    /// <summary>Completes after the first connect attempt: successfully, or with its <see cref="RedisConnectionException"/>.</summary>
    public Task FirstAttempt => _firstAttempt.Task;

    public void Start() => _loop = Task.Run(RunAsync);

    public async ValueTask StopAsync()
    {
        if (_stop.IsCancellationRequested) return;
        await _stop.CancelAsync().ConfigureAwait(false);
        Interlocked.Exchange(ref _current, null)?.Fail(new RedisConnectionException("The Redis client was disposed."));
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        _stop.Dispose();
    }

    private async Task RunAsync()
    {
        var stop = _stop.Token;
        var delay = _options.ReconnectMinDelay;
        var everConnected = false;
        var failedAttempts = 0;
        while (!stop.IsCancellationRequested)
        {
            RespConnection connection;
            var options = _chooseNode?.Invoke() ?? _options;
            try
            {
                connection = await RespConnection.ConnectAsync(options, _subscriber, _onPush, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                failedAttempts++;
                _firstAttempt.TrySetException(e as RedisConnectionException ?? new RedisConnectionException(e.Message, e));
                var wait = WithJitter(delay);
                Log.ConnectFailed(_logger, _role, options.EndPoint, failedAttempts, (long)wait.TotalMilliseconds, e.Message);
                try
                {
                    await Task.Delay(wait, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.ReconnectMaxDelay.Ticks));
                continue;
            }

            // Full fence: StopAsync either sees this connection and fails it, or we see the stop.
            Interlocked.Exchange(ref _current, connection);
            if (stop.IsCancellationRequested)
            {
                connection.Fail(new RedisConnectionException("The Redis client was disposed."));
                break;
            }
            if (everConnected) Log.Reconnected(_logger, _role, options.EndPoint, failedAttempts);
            else Log.Connected(_logger, _role, options.EndPoint);

            if (_onConnected is not null)
            {
                try
                {
                    await _onConnected(connection, everConnected, stop).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    Log.SetupFailed(_logger, _role, options.EndPoint, e.Message);
                    connection.Fail(e as RedisConnectionException ?? new RedisConnectionException(e.Message, e));
                }
            }
            everConnected = true;
            failedAttempts = 0;
            delay = _options.ReconnectMinDelay;
            _firstAttempt.TrySetResult();

            var reason = await connection.Closed.ConfigureAwait(false);
            Interlocked.CompareExchange(ref _current, null, connection);
            if (stop.IsCancellationRequested) break;
            Log.Disconnected(_logger, _role, options.EndPoint, reason.Message);
            // The first reconnect attempt is immediate (a blip); backoff applies from the first failure.
        }
        _firstAttempt.TrySetException(new RedisConnectionException("The Redis client was disposed."));
    }

    // ±20 % so many pods do not reconnect in lockstep after a Redis restart.
    private static TimeSpan WithJitter(TimeSpan delay) =>
        TimeSpan.FromTicks((long)(delay.Ticks * (0.8 + (Random.Shared.NextDouble() * 0.4))));
}
