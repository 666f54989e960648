using Gateway.Core.Projection;
using Gateway.Core.Redis;

namespace Gateway.Portal.Admin;

/// <summary>What the proxies' shared counters in Redis say about one upstream account this minute.</summary>
public sealed record UpstreamLive(long Requests, long Tokens);

/// <summary>
/// Optional, read-only Redis access for the admin overview (<c>ConnectionStrings:Redis</c>, key prefix
/// <c>TokenGate:Redis:KeyPrefix</c>). Without a connection string, or when Redis cannot be reached, every
/// answer is null and the page shows "unknown". Only reads (HGETALL) are ever sent.
/// </summary>
public sealed class AdminRedis(string? connectionString, ProjectionKeys keys, TimeProvider time, ILogger<AdminRedis> logger) : IAsyncDisposable
{
    private readonly SemaphoreSlim _connectLock = new(1, 1);
    private IRedisClient? _client;

    public bool Configured => !string.IsNullOrWhiteSpace(connectionString);

    /// <summary>Requests and tokens every proxy replica sent to the account in the current UTC minute, or null when unknown.</summary>
    public async Task<UpstreamLive?> UpstreamThisMinuteAsync(string account, CancellationToken ct)
    {
        var minute = time.GetUtcNow().ToUnixTimeSeconds() / 60;
        if (await ReadAsync("HGETALL", keys.UpstreamUsage(account, minute), ct) is not { } reply) return null;
        long requests = 0, tokens = 0;
        var items = reply.Items;
        for (var i = 0; i + 1 < items.Count; i += 2)
        {
            var field = items[i].AsString();
            _ = long.TryParse(items[i + 1].AsString(), System.Globalization.CultureInfo.InvariantCulture, out var v);
            if (field == "requests") requests = v;
            else if (field == "tokens") tokens = v;
        }
        return new UpstreamLive(requests, tokens);
    }

    /// <summary>Until when the proxies cool the account down (an upstream 429's Retry-After, or repeated failures):
    /// null when Redis is unknown, <see cref="DateTimeOffset.MinValue"/> when the account is not cooling down.</summary>
    public async Task<DateTimeOffset?> UpstreamCooldownAsync(string account, CancellationToken ct)
    {
        if (await ReadAsync("GET", keys.UpstreamCooldown(account), ct) is not { } reply) return null;
        return long.TryParse(reply.AsString(), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var ms)
            && DateTimeOffset.FromUnixTimeMilliseconds(ms) is var until && until > time.GetUtcNow() ? until : DateTimeOffset.MinValue;
    }

    /// <summary>One read command on one key with a 2 s deadline; null when Redis is not configured or cannot be reached.</summary>
    private async Task<RespValue?> ReadAsync(string command, string key, CancellationToken ct)
    {
        var client = await ClientAsync(ct);
        if (client is null) return null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            return await client.ExecuteAsync(command, [key], timeout.Token);
        }
        catch (Exception e) when (e is RedisConnectionException or RedisServerException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            AdminLog.RedisUnavailable(logger, e.GetType().Name);
            return null;
        }
    }

    private async Task<IRedisClient?> ClientAsync(CancellationToken ct)
    {
        if (!Configured) return null;
        if (_client is { IsConnected: true } c) return c;
        await _connectLock.WaitAsync(ct);
        try
        {
            if (_client is { IsConnected: true } again) return again;
            if (_client is not null) await _client.DisposeAsync();
            _client = null;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            _client = await RedisClients.ConnectAsync(connectionString!, logger, timeout.Token);
            return _client;
        }
        catch (Exception e) when (e is RedisConnectionException or OperationCanceledException or System.Net.Sockets.SocketException or FormatException or ArgumentException && !ct.IsCancellationRequested)
        {
            AdminLog.RedisUnavailable(logger, e.GetType().Name);
            return null;
        }
        finally
        {
            _connectLock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_client is not null) await _client.DisposeAsync();
        _connectLock.Dispose();
    }
}

/// <summary>Registration of <see cref="AdminRedis"/>.</summary>
public static class AdminRedisSetup
{
    public static IServiceCollection AddAdminRedis(this IServiceCollection services, IConfiguration configuration)
    {
        var prefix = configuration["TokenGate:Redis:KeyPrefix"];
        services.AddSingleton(sp => new AdminRedis(
            configuration.GetConnectionString("Redis"),
            new ProjectionKeys(string.IsNullOrEmpty(prefix) ? ProjectionKeys.DefaultPrefix : prefix),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<AdminRedis>>()));
        return services;
    }
}

internal static partial class AdminLog
{
    [LoggerMessage(1, LogLevel.Warning, "Admin overview: Redis is unavailable ({Error}); live upstream figures show as unknown.")]
    public static partial void RedisUnavailable(ILogger logger, string error);
}
