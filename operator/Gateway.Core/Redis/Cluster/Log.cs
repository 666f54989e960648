using Microsoft.Extensions.Logging;

namespace Gateway.Core.Redis.Cluster;

// Topology only: keys and argument values are never logged.
internal static partial class Log
{
    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Redis Cluster slot map loaded from {EndPoint}: {Masters} masters")]
    public static partial void TopologyLoaded(ILogger logger, int masters, string endPoint);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Refreshing the Redis Cluster slot map failed: {Reason}")]
    public static partial void TopologyRefreshFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 22, Level = LogLevel.Warning, Message = "Redis Cluster node {EndPoint} is unreachable; refreshing the slot map")]
    public static partial void NodeUnreachable(ILogger logger, string endPoint);

    [LoggerMessage(EventId = 23, Level = LogLevel.Error, Message = "A handler of the Redis Cluster client's Reconnected event threw")]
    public static partial void ReconnectedHandlerFailed(ILogger logger, Exception exception);
}
