using System.Globalization;
using System.Text.Json;
using Gateway.Core.Hosting;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;
using Gateway.MockUpstream;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Proxy.Tests.Infrastructure;

/// <summary>
/// A mock upstream and one or more proxies on real Kestrel (127.0.0.1:0), sharing the real Redis under
/// a unique key prefix. The projection is written the way the operator writes it (see <see cref="ProjectionWriter"/>).
/// </summary>
public sealed class ProxyHarness : IAsyncDisposable
{
    public const string Pepper = "proxy-tests-pepper-0123456789abcdef";
    public const string MockCredential = "mock-upstream-key";

    private readonly List<WebApplication> _apps = [];
    private readonly List<WebApplication> _proxies = [];

    private ProxyHarness(RespClient redis, ProjectionKeys keys)
    {
        Redis = redis;
        Keys = keys;
        Hasher = new KeyHasher(System.Text.Encoding.UTF8.GetBytes(Pepper));
        Projection = new ProjectionWriter(redis, keys, Hasher);
    }

    public RespClient Redis { get; }
    public ProjectionKeys Keys { get; }
    public KeyHasher Hasher { get; }
    public ProjectionWriter Projection { get; }
    public Uri MockUrl { get; private set; } = null!;
    public List<Uri> ProxyUrls { get; } = [];
    /// <summary>Each proxy's management listener (/metrics, /healthz, /readyz).</summary>
    public List<Uri> ManagementUrls { get; } = [];
    public Uri ProxyUrl => ProxyUrls[0];
    public HttpClient Http { get; private set; } = null!;
    public HttpClient MockHttp { get; private set; } = null!;

    /// <summary>Starts the mock and <paramref name="proxies"/> proxies; <paramref name="settings"/> adds proxy configuration.
    /// <paramref name="upstreams"/> replaces the default upstream list (written before any proxy starts);
    /// <paramref name="configureProxy"/> runs on each proxy's builder before the proxy registers its services;
    /// <paramref name="configureMock"/> on the mock's builder (e.g. to put a recording middleware in front of it).</summary>
    public static async Task<ProxyHarness> StartAsync(int proxies = 1, IDictionary<string, string?>? settings = null, string? redis = null, bool withDefaultUpstream = true,
        Func<ProxyHarness, UpstreamProjection[]>? upstreams = null, Action<WebApplicationBuilder>? configureProxy = null,
        Action<WebApplicationBuilder>? configureMock = null)
    {
        var prefix = TestEnvironment.UniqueRedisPrefix();
        var client = await RespClient.ConnectAsync(TestEnvironment.Redis);
        var h = new ProxyHarness(client, new ProjectionKeys(prefix));
        // The projection counts as built (as the operator marks it): an unknown key is then "invalid", not "rebuilding".
        await client.ExecuteAsync("SET", [h.Keys.Epoch, "1", "NX"]);
        var mock = MockUpstreamApp.Build(["--urls", "http://127.0.0.1:0"], b =>
        {
            b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Warning",
                ["Mock:RecordCapacity"] = "1000",
            });
            configureMock?.Invoke(b);
        });
        await mock.StartAsync();
        h._apps.Add(mock);
        h.MockUrl = new Uri(mock.Urls.First());
        h.MockHttp = new HttpClient { BaseAddress = h.MockUrl };
        if (upstreams is not null) await h.Projection.PutUpstreamsAsync(upstreams(h));
        else if (withDefaultUpstream) await h.Projection.PutUpstreamsAsync(h.MockUpstream());
        for (var i = 0; i < proxies; i++)
        {
            var config = new Dictionary<string, string?>
            {
                ["ConnectionStrings:Redis"] = redis ?? TestEnvironment.Redis,
                ["TokenGate:Pepper"] = Pepper,
                [Gateway.Core.Security.CredentialKeyConfiguration.KeysSetting + ":" + TestCredentialKeys.KeyId] = TestCredentialKeys.Key,
                ["TokenGate:PricesDirectory"] = RepositoryRoot.PricesDirectory,
                ["TokenGate:Redis:KeyPrefix"] = prefix,
                ["Logging:LogLevel:Default"] = "Warning",
                // A loopback connect never needs long, but a starved thread pool on a loaded machine can delay it
                // past the 10 s default; tests about connect failures use refused ports, which fail at once.
                ["TokenGate:Proxy:UpstreamConnectTimeoutSeconds"] = "60",
            };
            if (settings is not null) foreach (var (k, v) in settings) config[k] = v;
            var proxy = ProxyApp.Build(["--urls", "http://127.0.0.1:0"], b =>
            {
                b.Configuration.AddInMemoryCollection(config);
                configureProxy?.Invoke(b);
            });
            await proxy.StartAsync();
            h._apps.Add(proxy);
            h._proxies.Add(proxy);
            var listeners = proxy.Services.GetRequiredService<Listeners>();
            h.ProxyUrls.Add(listeners.PublicUrls[0]);
            h.ManagementUrls.Add(listeners.ManagementUrls[0]);
            if (redis is null)
            {
                // As a Service would, send nothing until the proxy is ready: its Redis connection may still be
                // opening on a loaded machine, and until then it answers 503 by design. (Tests that pass their own
                // Redis address are about that state and watch readiness themselves.)
                using var probe = new HttpClient { BaseAddress = listeners.ManagementUrls[0] };
                await Eventually.TrueAsync(async () => (await probe.GetAsync("/readyz")).IsSuccessStatusCode, "the proxy to be ready");
            }
        }
        if (proxies > 0) h.Http = new HttpClient { BaseAddress = h.ProxyUrl };
        return h;
    }

    /// <summary>The mock as an openai-compatible account serving the sample models and a mapped alias.</summary>
    public UpstreamProjection MockUpstream(string name = "default/mock", int priority = 0, int weight = 1, Dictionary<string, string>? labels = null) => new()
    {
        Name = name,
        Provider = Providers.OpenAICompatible,
        BaseUrl = new Uri(MockUrl, "/v1").ToString(),
        Credential = MockCredential,
        Priority = priority,
        Weight = weight,
        Labels = labels ?? new Dictionary<string, string> { ["pool"] = "shared" },
        Models =
        [
            new UpstreamModel { Name = "gpt-4o-mini" },
            new UpstreamModel { Name = "gpt-4o" },
            new UpstreamModel { Name = "text-embedding-3-small" },
            new UpstreamModel { Name = "claude-sonnet-4-5" },
            new UpstreamModel { Name = "mapped-mini", UpstreamName = "gpt-4o-mini" },
            new UpstreamModel { Name = "custom-priced", UpstreamName = "gpt-4o", Price = new ModelPrice { Input = 1m, Output = 2m } },
        ],
        PriceVersion = "ua:" + name + "@1",
    };

    /// <summary>A user with a balance and one key; returns the plaintext key.</summary>
    public Task<TestCaller> CreateCallerAsync(decimal balance = 10m, Func<UserProjection, UserProjection>? user = null, Func<KeyProjection, KeyProjection>? key = null) =>
        Projection.CreateCallerAsync(balance, user, key);

    /// <summary>Usage events in the stream, oldest first.</summary>
    public Task<List<UsageEvent>> UsageEventsAsync() => Projection.ReadUsageAsync();

    /// <summary>Waits for the usage event of the request whose response carried <paramref name="requestId"/>... or the n-th event for a key.</summary>
    public async Task<UsageEvent> WaitForUsageAsync(string keyId, int count = 1)
    {
        var events = await Eventually.ReturnsAsync(async () =>
        {
            var all = await UsageEventsAsync();
            var mine = all.Where(e => e.KeyId == keyId).ToList();
            return mine.Count >= count ? mine : null;
        }, $"{count} usage event(s) for key {keyId}");
        return events[count - 1];
    }

    /// <summary>Requests the mock recorded (newest last).</summary>
    public async Task<List<MockUpstream.Recording.RecordedRequest>> MockRequestsAsync()
    {
        var json = await MockHttp.GetStringAsync("/_mock/requests");
        using var doc = JsonDocument.Parse(json);
        var array = doc.RootElement.ValueKind == JsonValueKind.Array ? doc.RootElement : doc.RootElement.GetProperty("requests");
        return array.Deserialize<List<MockUpstream.Recording.RecordedRequest>>()!.OrderBy(r => r.Sequence).ToList();
    }

    public HttpClient ClientFor(int proxy) => new() { BaseAddress = ProxyUrls[proxy] };

    /// <summary>The Prometheus exposition of one proxy, scraped from its management listener.</summary>
    public async Task<string> MetricsAsync(int proxy = 0)
    {
        using var http = new HttpClient { BaseAddress = ManagementUrls[proxy] };
        return await http.GetStringAsync("/metrics");
    }

    /// <summary>The services of one proxy, to look at its in-process state.</summary>
    public IServiceProvider ProxyServices(int proxy) => _proxies[proxy].Services;

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        MockHttp?.Dispose();
        foreach (var app in _apps)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
        await DeletePrefixAsync();
        await Redis.DisposeAsync();
    }

    private async Task DeletePrefixAsync()
    {
        var cursor = "0";
        do
        {
            var reply = await Redis.ExecuteAsync("SCAN", [cursor, "MATCH", Keys.Prefix + "*", "COUNT", 1000]);
            cursor = reply.Items[0].AsString()!;
            var keys = reply.Items[1].Items.Select(i => (RedisArg)i.AsString()!).ToList();
            if (keys.Count > 0) await Redis.ExecuteAsync("DEL", keys);
        } while (cursor != "0");
    }
}

/// <summary>A caller the test created: plaintext key plus its projections.</summary>
public sealed record TestCaller(string ApiKey, KeyProjection Key, UserProjection User)
{
    public string KeyHash { get; init; } = "";
}

/// <summary>Writes the Redis projection the way the operator does (JSON under the shared key layout, balance in micro-dollars).</summary>
public sealed class ProjectionWriter(IRedisClient redis, ProjectionKeys keys, KeyHasher hasher)
{
    public async Task<TestCaller> CreateCallerAsync(decimal balance, Func<UserProjection, UserProjection>? user = null, Func<KeyProjection, KeyProjection>? key = null)
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var u = new UserProjection { UserId = "u-" + id, Name = "default/user-" + id };
        if (user is not null) u = user(u);
        await PutUserAsync(u, balance);
        var k = new KeyProjection { KeyId = "k-" + id, Name = "default/key-" + id, Version = 1, UserId = u.UserId };
        if (key is not null) k = key(k);
        var plaintext = ApiKeyFormat.Generate();
        var hash = hasher.Hash(plaintext);
        await PutKeyAsync(hash, k);
        return new TestCaller(plaintext, k, u) { KeyHash = hash };
    }

    public async Task PutUserAsync(UserProjection user, decimal balance)
    {
        await redis.ExecuteAsync("SET", [keys.User(user.UserId), JsonSerializer.Serialize(user, TokenGateJson.Options)]);
        await redis.ExecuteAsync("SET", [keys.Balance(user.UserId), Money.ToMicrosFloor(balance)]);
        await PublishAsync(Invalidation.ForUser(user.UserId));
    }

    public async Task PutKeyAsync(string hash, KeyProjection key)
    {
        await redis.ExecuteAsync("SET", [keys.Key(hash), JsonSerializer.Serialize(key, TokenGateJson.Options)]);
        await PublishAsync(Invalidation.ForKey(hash));
    }

    public async Task DeleteKeyAsync(string hash)
    {
        await redis.ExecuteAsync("DEL", [keys.Key(hash)]);
        await PublishAsync(Invalidation.ForKey(hash));
    }

    /// <summary>Stores the accounts as the operator does: each credential encrypted with the test key ring.</summary>
    public async Task PutUpstreamsAsync(params UpstreamProjection[] upstreams)
    {
        var stored = upstreams.Select(u => string.IsNullOrEmpty(u.Credential) ? u
            : u with { Credential = null, EncryptedCredential = TestCredentialKeys.Protector.Protect(u.Credential, u.Name) }).ToList();
        await redis.ExecuteAsync("SET", [keys.Upstreams, JsonSerializer.Serialize(stored, TokenGateJson.Options)]);
        await PublishAsync(Invalidation.Upstreams);
    }

    public async Task<long> BalanceMicrosAsync(string userId)
    {
        var v = await redis.ExecuteAsync("GET", [keys.Balance(userId)]);
        return v.IsNull ? 0 : long.Parse(v.AsString()!, CultureInfo.InvariantCulture);
    }

    public Task PublishAsync(string message) => redis.ExecuteAsync("PUBLISH", [keys.InvalidationChannel, message]);

    /// <summary>Request id → lease id of each usage event written under a quota lease.</summary>
    public async Task<Dictionary<string, string>> LeasedUsageAsync()
    {
        var leased = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in await StreamEntriesAsync())
            if (f.TryGetValue("request_id", out var request) && f.TryGetValue("lease_id", out var lease)) leased[request] = lease;
        return leased;
    }

    /// <summary>Open quota leases of <paramref name="userId"/>: how many, and the money they hold (granted − used).</summary>
    public async Task<(int Count, long Micros)> LeasesOfAsync(string userId)
    {
        var (count, micros) = (0, 0L);
        foreach (var (shard, id) in await ShardedRedis.MembersAsync(redis, keys.Leases))
        {
            var v = (await redis.ExecuteAsync("HMGET", [keys.Lease(shard, id), "user_id", "money", "used_money"])).Items;
            if (v[0].IsNull || v[0].AsString() != userId) continue;
            count++;
            micros += v[1].AsInt64() - v[2].AsInt64();
        }
        return (count, micros);
    }

    public async Task<List<UsageEvent>> ReadUsageAsync() => (await StreamEntriesAsync()).Select(UsageEvent.FromStreamFields).ToList();

    /// <summary>Every usage stream entry's fields as written (every shard), oldest first.</summary>
    private async Task<List<Dictionary<string, string>>> StreamEntriesAsync() =>
        (await ShardedRedis.UsageEntriesAsync(redis, keys)).Select(e => e.Fields).ToList();
}

/// <summary>Finds the repository root (the folder holding Gateway.sln) from the test's bin folder.</summary>
public static class RepositoryRoot
{
    public static string Path { get; } = Find();
    public static string PricesDirectory => System.IO.Path.Combine(Path, "config", "prices");

    private static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(System.IO.Path.Combine(dir.FullName, "Gateway.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find the repository root (Gateway.sln) above " + AppContext.BaseDirectory);
    }
}
