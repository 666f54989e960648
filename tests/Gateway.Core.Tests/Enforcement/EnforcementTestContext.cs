using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.Testing;

namespace Gateway.Core.Tests.Enforcement;

/// <summary>A clock the test moves by hand; its value reaches the scripts as ARGV.</summary>
public sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;
    public override DateTimeOffset GetUtcNow() => Now;
    public void Advance(TimeSpan by) => Now += by;
    public void AdvanceMs(long ms) => Now = Now.AddMilliseconds(ms);
}

/// <summary>A real Redis connection (the shared server, or a three-master cluster), a unique key prefix and an
/// <see cref="Enforcer"/> on a manual clock. Deletes its keys on dispose (on the shared server).</summary>
public sealed class EnforcementTestContext : IAsyncDisposable
{
    /// <summary>One second into a minute, so minute-window arithmetic in tests is easy to follow.</summary>
    public static readonly DateTimeOffset T0 = new(2026, 6, 10, 10, 0, 1, TimeSpan.Zero);

    private readonly Func<Task<IRedisClient>> _connect;
    private readonly bool _shared;

    private EnforcementTestContext(IRedisClient redis, ProjectionKeys keys, ManualClock clock, Func<Task<IRedisClient>> connect, bool shared)
    {
        Redis = redis;
        Keys = keys;
        Clock = clock;
        Enforcer = new Enforcer(redis, keys, clock);
        _connect = connect;
        _shared = shared;
    }

    public IRedisClient Redis { get; }
    public ProjectionKeys Keys { get; }
    public ManualClock Clock { get; }
    public Enforcer Enforcer { get; }

    /// <summary>On the shared Redis server (<see cref="TestEnvironment.Redis"/>).</summary>
    public static async Task<EnforcementTestContext> CreateAsync(DateTimeOffset? start = null)
    {
        var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        return new EnforcementTestContext(redis, new ProjectionKeys(TestEnvironment.UniqueRedisPrefix()), new ManualClock(start ?? T0),
            async () => await RespClient.ConnectAsync(TestEnvironment.Redis), shared: true);
    }

    /// <summary>On a Redis Cluster (a connection string with <c>cluster=true</c>); its keys are left to the throw-away cluster.</summary>
    public static async Task<EnforcementTestContext> CreateOnAsync(string connectionString, DateTimeOffset? start = null)
    {
        var redis = await RedisClients.ConnectAsync(connectionString);
        return new EnforcementTestContext(redis, new ProjectionKeys(TestEnvironment.UniqueRedisPrefix()), new ManualClock(start ?? T0),
            () => RedisClients.ConnectAsync(connectionString), shared: false);
    }

    /// <summary>Another connection to the same Redis (a second replica's); the caller disposes it.</summary>
    public Task<IRedisClient> ConnectAnotherAsync() => _connect();

    public static UserProjection User(string userId = "u1", RateLimits? limits = null, Budget? budget = null) =>
        new() { UserId = userId, Name = "default/" + userId, Limits = limits, Budget = budget };

    public static KeyProjection Key(string keyId = "k1", string userId = "u1", KeyLimits? limits = null) =>
        new() { KeyId = keyId, Name = "default/" + keyId, Version = 1, UserId = userId, Limits = limits };

    public static AdmissionRequest Request(KeyProjection key, UserProjection user, long reservedMicros = 1_000,
        long inputTokens = 100, long maxOutputTokens = 200, TimeSpan? lease = null) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"),
        Key = key,
        User = user,
        ReservedMicros = reservedMicros,
        EstimatedInputTokens = inputTokens,
        MaxOutputTokens = maxOutputTokens,
        Model = "gpt-test",
        Route = "/v1/chat/completions",
        PriceVersion = "test@1",
        Lease = lease,
    };

    public static Settlement Settlement(Reservation reservation, long actualMicros, TokenCounts tokens, int status = 200) => new()
    {
        Reservation = reservation,
        Usage = new UsageEvent
        {
            RequestId = reservation.RequestId,
            KeyId = reservation.KeyId,
            KeyVersion = reservation.KeyVersion,
            UserId = reservation.UserId,
            Upstream = "default/mock",
            Model = "gpt-test",
            Route = "/v1/chat/completions",
            Tokens = tokens,
            Cost = Money.FromMicros(actualMicros),
            PriceVersion = "test@1",
            StartedAt = reservation.StartedAt,
            DurationMs = 120,
            Status = status,
        },
    };

    public Task SetBalanceAsync(string userId, long micros) => Redis.ExecuteAsync("SET", [Keys.Balance(userId), micros]);

    public async Task<long> GetLongAsync(string key) =>
        await Redis.ExecuteAsync("GET", [key]) is { IsNull: false } v ? v.AsInt64() : 0;

    public async Task<long> HashLongAsync(string key, string field) =>
        await Redis.ExecuteAsync("HGET", [key, field]) is { IsNull: false } v ? v.AsInt64() : 0;

    public async Task<long> CountAsync(string zsetKey) => (await Redis.ExecuteAsync("ZCARD", [zsetKey])).AsInt64();

    public async Task<bool> ExistsAsync(string key) => (await Redis.ExecuteAsync("EXISTS", [key])).AsInt64() == 1;

    /// <summary>ZCARD summed over every shard's set (e.g. <c>Keys.Reservations</c>, <c>Keys.Leases</c>).</summary>
    public Task<long> CountAllShardsAsync(Func<int, string> zsetOfShard) => ShardedRedis.CountAsync(Redis, zsetOfShard);

    /// <summary>Every usage event in the streams, oldest first.</summary>
    public async Task<List<UsageEvent>> UsageEventsAsync() => (await StreamEntriesAsync()).Select(UsageEvent.FromStreamFields).ToList();

    /// <summary>Every usage stream entry's fields as written (including those <see cref="UsageEvent"/> does not read), from
    /// every shard's stream, oldest first.</summary>
    public async Task<List<Dictionary<string, string>>> StreamEntriesAsync() =>
        (await ShardedRedis.UsageEntriesAsync(Redis, Keys)).Select(e => e.Fields).ToList();

    /// <summary>Deletes every key of this context's prefix on every master (as FLUSHALL would, for this test alone).</summary>
    public async Task DeleteAllKeysAsync()
    {
        foreach (var master in await Redis.ExecuteOnEachMasterAsync("KEYS", [Keys.Prefix + "*"]))
            foreach (var key in master.Items) await Redis.ExecuteAsync("DEL", [key.AsString()!]);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_shared)
        {
            await Redis.DisposeAsync();
            return;
        }
        await DeleteAllKeysAsync();
        await Redis.DisposeAsync();
    }
}
