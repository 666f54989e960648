using System.Globalization;

namespace Gateway.Core.Redis;

/// <summary>
/// Settings of a <see cref="RespClient"/>, usually parsed from a connection string such as
/// <c>127.0.0.1:6379</c> or <c>host:6379,password=...,db=0,connectTimeout=5000,commandTimeout=5000</c>.
/// </summary>
public sealed record RespClientOptions
{
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 6379;

    /// <summary>ACL user name for <c>AUTH user password</c>; null uses <c>AUTH password</c>.</summary>
    public string? User { get; init; }

    /// <summary>Sent with AUTH on every (re)connect; never logged or printed.</summary>
    public string? Password { get; init; }

    /// <summary>Database selected with SELECT on every (re)connect of the command connection.</summary>
    public int Database { get; init; }

    /// <summary>Bound on one connect attempt, including AUTH and SELECT.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A command without a reply after this long fails and the connection is re-established,
    /// because a late reply would otherwise be matched to the wrong caller.</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>First delay between reconnect attempts; doubles (with jitter) up to <see cref="ReconnectMaxDelay"/>.</summary>
    public TimeSpan ReconnectMinDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan ReconnectMaxDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The endpoint is one node (the seed) of a Redis Cluster: <see cref="RedisClients"/> then creates a
    /// <see cref="Cluster.RedisClusterClient"/>, which discovers the other nodes and routes commands by key slot.</summary>
    public bool Cluster { get; init; }

    /// <summary>"host:port", for logs and error messages.</summary>
    public string EndPoint => Host.Contains(':', StringComparison.Ordinal)
        ? "[" + Host + "]:" + Port.ToString(CultureInfo.InvariantCulture)
        : Host + ":" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Parses "host[:port][,option=value...]". Options (case-insensitive): <c>password</c>, <c>user</c>,
    /// <c>db</c> (or <c>database</c>), <c>connectTimeout</c>, <c>commandTimeout</c>, <c>reconnectMinDelay</c>,
    /// <c>reconnectMaxDelay</c> (all in milliseconds), <c>cluster</c> (<c>true</c>/<c>false</c>: the host is a seed
    /// node of a Redis Cluster, see <see cref="Cluster"/>; only database 0 then); <c>abortConnect</c> is accepted and
    /// ignored for compatibility with StackExchange.Redis strings. Errors name the option, never its value.
    /// </summary>
    public static RespClientOptions Parse(string connectionString)
    {
        ArgumentNullException.ThrowIfNull(connectionString);
        var parts = connectionString.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0].Contains('=', StringComparison.Ordinal))
            throw new FormatException("A Redis connection string must start with host or host:port.");

        var (host, port) = ParseEndPoint(parts[0]);
        var options = new RespClientOptions { Host = host, Port = port };
        for (var i = 1; i < parts.Length; i++)
        {
            var eq = parts[i].IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw new FormatException($"Redis connection string option #{i} is not of the form name=value.");
            var name = parts[i][..eq].Trim();
            var value = parts[i][(eq + 1)..].Trim();
            options = name.ToLowerInvariant() switch
            {
                "password" => options with { Password = value.Length == 0 ? null : value },
                "user" or "username" => options with { User = value.Length == 0 ? null : value },
                "db" or "database" or "defaultdatabase" => options with { Database = ParseInt(name, value, 0, int.MaxValue) },
                "connecttimeout" => options with { ConnectTimeout = ParseMilliseconds(name, value) },
                "commandtimeout" or "synctimeout" or "asynctimeout" => options with { CommandTimeout = ParseMilliseconds(name, value) },
                "reconnectmindelay" => options with { ReconnectMinDelay = ParseMilliseconds(name, value) },
                "reconnectmaxdelay" => options with { ReconnectMaxDelay = ParseMilliseconds(name, value) },
                "cluster" => options with { Cluster = ParseBool(name, value) },
                "abortconnect" => options,
                "ssl" when value.Equals("false", StringComparison.OrdinalIgnoreCase) => options,
                "ssl" => throw new FormatException("TLS (ssl=true) is not supported by this Redis client."),
                _ => throw new FormatException($"Unknown Redis connection string option '{name}'."),
            };
        }
        if (options.ReconnectMaxDelay < options.ReconnectMinDelay)
            throw new FormatException("reconnectMaxDelay must not be smaller than reconnectMinDelay.");
        if (options.Cluster && options.Database != 0)
            throw new FormatException("Redis Cluster has only database 0: remove the db option or cluster=true.");
        return options;
    }

    // Redacts the password so options can be logged or shown in exceptions safely.
    public override string ToString() =>
        $"{EndPoint},db={Database.ToString(CultureInfo.InvariantCulture)},password={(Password is null ? "(none)" : "***")}{(Cluster ? ",cluster=true" : "")}";

    private static (string Host, int Port) ParseEndPoint(string text)
    {
        string host;
        string? portText = null;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0) throw new FormatException("The Redis host has an unclosed '['.");
            host = text[1..close];
            if (close + 1 < text.Length)
            {
                if (text[close + 1] != ':') throw new FormatException("Expected ':' after the bracketed Redis host.");
                portText = text[(close + 2)..];
            }
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':', StringComparison.Ordinal) == colon)
            {
                host = text[..colon];
                portText = text[(colon + 1)..];
            }
            else
            {
                host = text;
            }
        }
        if (host.Length == 0) throw new FormatException("The Redis host is empty.");
        var port = portText is null ? 6379 : ParseInt("port", portText, 1, 65535);
        return (host, port);
    }

    private static int ParseInt(string name, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new FormatException($"Redis connection string option '{name}' must be an integer between {min} and {max}.");

    private static bool ParseBool(string name, string value) =>
        bool.TryParse(value, out var b) ? b : throw new FormatException($"Redis connection string option '{name}' must be true or false.");

    private static TimeSpan ParseMilliseconds(string name, string value) =>
        TimeSpan.FromMilliseconds(ParseInt(name, value, 1, int.MaxValue));
}
