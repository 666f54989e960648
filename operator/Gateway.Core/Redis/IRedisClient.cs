namespace Gateway.Core.Redis;

/// <summary>
/// A Redis client over RESP: commands are pipelined over one multiplexed connection.
/// Implemented by <see cref="RespClient"/>; narrow so a full client library can replace it.
/// </summary>
public interface IRedisClient : IAsyncDisposable
{
    /// <summary>True while the command connection is established.</summary>
    bool IsConnected { get; }

    /// <summary>Sends one command and awaits its reply. An error reply throws <see cref="RedisServerException"/>;
    /// a broken or unavailable connection throws <see cref="RedisConnectionException"/>.</summary>
    Task<RespValue> ExecuteAsync(string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default);

    /// <summary>Runs a Lua script by EVALSHA, loading it with EVAL on NOSCRIPT.</summary>
    Task<RespValue> EvalAsync(LuaScript script, IReadOnlyList<RedisArg> keys, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default);

    /// <summary>Subscribes to a channel on a dedicated connection; re-subscribed after reconnects.
    /// Dispose the result to unsubscribe.</summary>
    Task<IAsyncDisposable> SubscribeAsync(string channel, Action<string, string> onMessage, CancellationToken cancellationToken = default);

    /// <summary>Raised (on a pool thread) after the subscriber connection was re-established, so callers can
    /// drop caches that may have missed invalidations while disconnected.</summary>
    event Action? Reconnected;
}
