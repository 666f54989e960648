using Microsoft.Extensions.Logging;

namespace Gateway.Core.Redis;

// Connection life-cycle only: command names, keys and argument values are never logged.
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Redis {Role} connection established to {EndPoint}")]
    public static partial void Connected(ILogger logger, string role, string endPoint);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Redis {Role} connection re-established to {EndPoint} after {FailedAttempts} failed attempts")]
    public static partial void Reconnected(ILogger logger, string role, string endPoint, int failedAttempts);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Redis {Role} connection to {EndPoint} lost: {Reason}")]
    public static partial void Disconnected(ILogger logger, string role, string endPoint, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Connecting the Redis {Role} connection to {EndPoint} failed (attempt {Attempt}); retrying in {DelayMs} ms: {Reason}")]
    public static partial void ConnectFailed(ILogger logger, string role, string endPoint, int attempt, long delayMs, string reason);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Setting up the Redis {Role} connection to {EndPoint} failed: {Reason}")]
    public static partial void SetupFailed(ILogger logger, string role, string endPoint, string reason);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "Re-subscribed {Count} Redis channels after reconnecting")]
    public static partial void Resubscribed(ILogger logger, int count);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "A Redis message handler for channel {Channel} threw")]
    public static partial void HandlerFailed(ILogger logger, string channel, Exception exception);

    [LoggerMessage(EventId = 8, Level = LogLevel.Error, Message = "A handler of the Redis Reconnected event threw")]
    public static partial void ReconnectedHandlerFailed(ILogger logger, Exception exception);
}
