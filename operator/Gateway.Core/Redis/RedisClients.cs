using Gateway.Core.Redis.Cluster;
using Microsoft.Extensions.Logging;

namespace Gateway.Core.Redis;

/// <summary>
/// Creates the right <see cref="IRedisClient"/> for a connection string, so hosts need not know whether Redis is a
/// single server (<see cref="RespClient"/>) or a cluster (<see cref="RedisClusterClient"/>, <c>cluster=true</c>).
/// </summary>
public static class RedisClients
{
    /// <summary>Creates a client that connects in the background (commands fail fast with
    /// <see cref="RedisConnectionException"/> until it is connected): for hosts that must start while Redis is down.</summary>
    public static IRedisClient Create(RespClientOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Cluster ? new RedisClusterClient(options, logger) : new RespClient(options, logger);
    }

    /// <summary>Creates a client and waits for its first connection (a cluster client: for its slot map).</summary>
    /// <exception cref="RedisConnectionException">Redis cannot be reached; nothing is left open.</exception>
    public static async Task<IRedisClient> ConnectAsync(RespClientOptions options, ILogger? logger = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Cluster
            ? await RedisClusterClient.ConnectAsync(options, logger, cancellationToken).ConfigureAwait(false)
            : await RespClient.ConnectAsync(options, logger, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Parses <paramref name="connectionString"/> (see <see cref="RespClientOptions.Parse"/>) and connects.</summary>
    public static Task<IRedisClient> ConnectAsync(string connectionString, ILogger? logger = null, CancellationToken cancellationToken = default) =>
        ConnectAsync(RespClientOptions.Parse(connectionString), logger, cancellationToken);

    /// <summary>
    /// Opens a dedicated client of the same kind and options as <paramref name="client"/> for blocking commands
    /// (<c>XREADGROUP ... BLOCK</c>); the caller disposes it. E.g. the ledger writer's factory:
    /// <c>ct =&gt; redis.CreateDedicatedAsync(ct)</c>.
    /// </summary>
    /// <exception cref="NotSupportedException"><paramref name="client"/> is neither a <see cref="RespClient"/> nor a <see cref="RedisClusterClient"/>.</exception>
    public static async Task<IRedisClient> CreateDedicatedAsync(this IRedisClient client, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        return client switch
        {
            RespClient resp => await resp.CreateDedicatedAsync(cancellationToken).ConfigureAwait(false),
            RedisClusterClient cluster => await cluster.CreateDedicatedAsync(cancellationToken).ConfigureAwait(false),
            _ => throw new NotSupportedException($"{client.GetType().Name} cannot open a dedicated connection."),
        };
    }

    /// <summary>True when blocking commands may run on <paramref name="client"/> (it is not a shared, multiplexed client).</summary>
    public static bool IsDedicated(this IRedisClient client) => client switch
    {
        RespClient resp => resp.IsDedicated,
        RedisClusterClient cluster => cluster.IsDedicated,
        _ => true,
    };

    /// <summary>
    /// Runs a node-wide command (FLUSHALL, DBSIZE, SCAN, SCRIPT FLUSH, ...) on every master: one reply per master
    /// of a cluster, or the single reply of a stand-alone server.
    /// </summary>
    public static async Task<IReadOnlyList<RespValue>> ExecuteOnEachMasterAsync(
        this IRedisClient client, string command, IReadOnlyList<RedisArg> args, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        if (client is RedisClusterClient cluster) return await cluster.ExecuteOnEachMasterAsync(command, args, cancellationToken).ConfigureAwait(false);
        return [await client.ExecuteAsync(command, args, cancellationToken).ConfigureAwait(false)];
    }
}
