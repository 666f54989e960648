using System.Net;
using System.Net.Sockets;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Proxy.Configuration;
using Gateway.Proxy.Routing;
using Gateway.Proxy.Tests.Endpoints;
using Gateway.Proxy.Tests.Infrastructure;
using Gateway.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Tests.Routing;

public sealed partial class AccountUsageSyncTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Noon = new(2026, 1, 1, 12, 0, 30, TimeSpan.Zero);
    private static readonly long NoonMinute = Noon.ToUnixTimeSeconds() / 60;
    private const string Chat = """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}""";

    private readonly ProjectionKeys _keys = new(TestEnvironment.UniqueRedisPrefix());
    private RespClient _redis = null!;

    public async Task InitializeAsync() => _redis = await RespClient.ConnectAsync(TestEnvironment.Redis);

    public async Task DisposeAsync()
    {
        var cursor = "0";
        do
        {
            var reply = await _redis.ExecuteAsync("SCAN", [cursor, "MATCH", _keys.Prefix + "*", "COUNT", 1000]);
            cursor = reply.Items[0].AsString()!;
            var keys = reply.Items[1].Items.Select(i => (RedisArg)i.AsString()!).ToList();
            if (keys.Count > 0) await _redis.ExecuteAsync("DEL", keys);
        } while (cursor != "0");
        await _redis.DisposeAsync();
    }

    private static UpstreamProjection Account(string name, int? requestsPerMinute = null, long? tokensPerMinute = null) => new()
    {
        Name = name,
        Provider = Providers.OpenAI,
        BaseUrl = "http://127.0.0.1:1/v1",
        Models = [new UpstreamModel { Name = "m" }],
        Limits = requestsPerMinute is null && tokensPerMinute is null ? null : new UpstreamLimits { RequestsPerMinute = requestsPerMinute, TokensPerMinute = tokensPerMinute },
    };

    /// <summary>One proxy replica's routing state and sync, without the HTTP host.</summary>
    private sealed class Replica
    {
        public Replica(IRedisClient redis, ProjectionKeys keys, TimeProvider clock, List<UpstreamProjection> accounts, ILogger<AccountUsageSync>? logger = null)
        {
            var options = Options.Create(new ProxyOptions());
            Catalog = new UpstreamCatalog(redis, keys, options, clock);
            Snapshot = Catalog.Build(accounts);
            Sync = new AccountUsageSync(redis, keys, Catalog, options, logger ?? NullLogger<AccountUsageSync>.Instance, clock);
        }

        public UpstreamCatalog Catalog { get; }
        public UpstreamSnapshot Snapshot { get; }
        public AccountUsageSync Sync { get; }

        public UpstreamHealth Health(string name) => Catalog.TryGetHealth(name, out var h) ? h : throw new InvalidOperationException("no health for " + name);
        public Task<bool> SyncAsync() => Sync.SyncOnceAsync(Snapshot, CancellationToken.None);
    }

    [Fact]
    public async Task Replicas_see_each_others_counts_after_one_sync_each()
    {
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Account("default/limited", requestsPerMinute: 4, tokensPerMinute: 1000), Account("default/free")];
        var a = new Replica(_redis, _keys, clock, accounts);
        var b = new Replica(_redis, _keys, clock, accounts);

        for (var i = 0; i < 3; i++) a.Health("default/limited").CountRequest();
        a.Health("default/limited").CountTokens(600);
        a.Health("default/free").CountRequest();
        Assert.True(b.Health("default/limited").UnderLimits(3, null));

        Assert.True(await a.SyncAsync());
        var key = _keys.UpstreamUsage("default/limited", NoonMinute);
        Assert.Equal("3", (await _redis.ExecuteAsync("HGET", [key, "requests"])).AsString());
        Assert.Equal("600", (await _redis.ExecuteAsync("HGET", [key, "tokens"])).AsString());
        var ttl = (await _redis.ExecuteAsync("TTL", [key])).AsInt64();
        Assert.InRange(ttl, 1, AccountUsageSync.TtlSeconds);
        // Accounts without per-minute limits are not shared.
        Assert.Equal(0, (await _redis.ExecuteAsync("EXISTS", [_keys.UpstreamUsage("default/free", NoonMinute)])).AsInt64());

        Assert.True(await b.SyncAsync());
        var onB = b.Health("default/limited");
        Assert.False(onB.UnderLimits(3, null));
        Assert.True(onB.UnderLimits(4, null));
        Assert.False(onB.UnderLimits(null, 600));
        // B only read: the shared totals did not change.
        Assert.Equal("3", (await _redis.ExecuteAsync("HGET", [key, "requests"])).AsString());

        onB.CountRequest();
        Assert.False(onB.UnderLimits(4, null));   // 3 shared + 1 of B's own, before B pushed it
        Assert.True(await b.SyncAsync());
        Assert.True(await a.SyncAsync());
        Assert.False(a.Health("default/limited").UnderLimits(4, null));
        Assert.True(a.Health("default/limited").UnderLimits(5, null));
        Assert.Equal("4", (await _redis.ExecuteAsync("HGET", [key, "requests"])).AsString());

        // The next UTC minute starts from zero on both replicas.
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.True(await a.SyncAsync());
        Assert.True(a.Health("default/limited").UnderLimits(1, null));
    }

    [Fact]
    public async Task Sync_fails_quietly_and_local_limits_still_apply_when_redis_is_unreachable()
    {
        var logger = new ListLogger<AccountUsageSync>();
        await using var down = new RespClient(RespClientOptions.Parse("127.0.0.1:" + ClosedPort() + ",connectTimeout=200"), NullLogger<RespClient>.Instance);
        var replica = new Replica(down, _keys, new ManualTimeProvider(Noon), [Account("default/limited", requestsPerMinute: 2)], logger);
        var health = replica.Health("default/limited");
        health.CountRequest();

        Assert.False(await replica.SyncAsync());
        Assert.False(await replica.SyncAsync());
        health.CountRequest();
        Assert.False(await replica.SyncAsync());

        Assert.False(health.UnderLimits(2, null));
        Assert.True(health.UnderLimits(3, null));
        // One warning for the whole outage, naming no key.
        var warning = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.DoesNotContain(_keys.Prefix, warning.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("default/limited", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Account_requests_per_minute_hold_across_two_proxy_replicas()
    {
        // Each replica alone is under the limit (A sent 3, B 1); only the shared count stops the fifth request.
        // One fixed wall clock for both replicas, so the test cannot straddle a minute boundary.
        var clock = new ManualTimeProvider(Noon);
        await using var h = await ProxyHarness.StartAsync(
            proxies: 2,
            settings: new Dictionary<string, string?> { ["TokenGate:Proxy:AccountUsageSyncMilliseconds"] = "100" },
            upstreams: x => [x.MockUpstream("default/limited") with { Limits = new UpstreamLimits { RequestsPerMinute = 4 } }],
            configureProxy: b => b.Services.AddSingleton<TimeProvider>(clock));
        var caller = await h.CreateCallerAsync();
        using var a = h.ClientFor(0);
        using var b = h.ClientFor(1);

        // One request through B first: a replica learns the upstream list from its first request.
        using (var first = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        for (var i = 0; i < 3; i++)
        {
            using var response = await a.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        var key = h.Keys.UpstreamUsage("default/limited", NoonMinute);
        await Eventually.TrueAsync(async () => (await h.Redis.ExecuteAsync("HGET", [key, "requests"])).AsString() == "4",
            "both replicas' four requests in the shared counter");
        for (var proxy = 0; proxy < 2; proxy++)
        {
            var catalog = h.ProxyServices(proxy).GetRequiredService<UpstreamCatalog>();
            await Eventually.TrueAsync(() => Task.FromResult(catalog.TryGetHealth("default/limited", out var health) && !health.UnderLimits(4, null)),
                $"replica {proxy}'s sync to bring back the shared count");
        }

        using (var rejected = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(rejected, HttpStatusCode.ServiceUnavailable, "upstream_unavailable", "server_error");
        using (var rejected = await a.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(rejected, HttpStatusCode.ServiceUnavailable, "upstream_unavailable", "server_error");

        var forwarded = (await h.MockRequestsAsync()).Count(r => r.Path == "/v1/chat/completions");
        Assert.Equal(4, forwarded);
        Assert.Equal("4", (await h.Redis.ExecuteAsync("HGET", [key, "requests"])).AsString());
    }

    [Fact]
    public async Task A_cooldown_on_one_replica_reaches_the_other_and_is_never_shortened()
    {
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Account("default/a"), Account("default/b")];
        var a = new Replica(_redis, _keys, clock, accounts);
        var b = new Replica(_redis, _keys, clock, accounts);
        var now = System.Diagnostics.Stopwatch.GetTimestamp();

        Assert.True(a.Health("default/a").CoolDownFor(TimeSpan.FromMinutes(10)));
        Assert.True(a.Health("default/a").IsCoolingDown(now));
        Assert.False(b.Health("default/a").IsCoolingDown(now));

        Assert.True(await a.SyncAsync());
        var key = _keys.UpstreamCooldown("default/a");
        Assert.Equal(Noon.AddMinutes(10).ToUnixTimeMilliseconds(), (await _redis.ExecuteAsync("GET", [key])).AsInt64());
        Assert.InRange((await _redis.ExecuteAsync("PTTL", [key])).AsInt64(), 1, 600_000);
        Assert.Equal(0, (await _redis.ExecuteAsync("EXISTS", [_keys.UpstreamCooldown("default/b")])).AsInt64());

        Assert.True(await b.SyncAsync());
        Assert.True(b.Health("default/a").IsCoolingDown(System.Diagnostics.Stopwatch.GetTimestamp()));
        Assert.False(b.Health("default/b").IsCoolingDown(System.Diagnostics.Stopwatch.GetTimestamp()));

        // B's own shorter cooldown of the same account does not cut A's short, here or in Redis.
        Assert.False(b.Health("default/a").CoolDownFor(TimeSpan.FromSeconds(5)));
        Assert.True(await b.SyncAsync());
        Assert.Equal(Noon.AddMinutes(10).ToUnixTimeMilliseconds(), (await _redis.ExecuteAsync("GET", [key])).AsInt64());

        // Once it has passed (by the wall clock the replicas share), a replica that had not seen it ignores it.
        var c = new Replica(_redis, _keys, clock, accounts);
        clock.Advance(TimeSpan.FromMinutes(11));
        Assert.True(await c.SyncAsync());
        Assert.False(c.Health("default/a").IsCoolingDown(System.Diagnostics.Stopwatch.GetTimestamp()));
    }

    [Fact]
    public async Task A_cooldown_that_could_not_be_shared_goes_with_the_next_sync()
    {
        await using var down = new RespClient(RespClientOptions.Parse("127.0.0.1:" + ClosedPort() + ",connectTimeout=200"), NullLogger<RespClient>.Instance);
        var clock = new ManualTimeProvider(Noon);
        var offline = new Replica(down, _keys, clock, [Account("default/a")]);
        offline.Health("default/a").CoolDownFor(TimeSpan.FromMinutes(1));
        Assert.False(await offline.SyncAsync());

        // The same health, now syncing through a Redis that answers.
        var sync = new AccountUsageSync(_redis, _keys, offline.Catalog, Options.Create(new ProxyOptions()), NullLogger<AccountUsageSync>.Instance, clock);
        Assert.True(await sync.SyncOnceAsync(offline.Snapshot, CancellationToken.None));
        Assert.Equal(Noon.AddMinutes(1).ToUnixTimeMilliseconds(), (await _redis.ExecuteAsync("GET", [_keys.UpstreamCooldown("default/a")])).AsInt64());
    }

    [Fact]
    public async Task An_upstream_429_with_retry_after_cools_the_account_on_both_replicas()
    {
        await using var h = await ProxyHarness.StartAsync(
            proxies: 2,
            settings: new Dictionary<string, string?> { ["TokenGate:Proxy:AccountUsageSyncMilliseconds"] = "100" },
            upstreams: x => [x.MockUpstream("default/only")]);
        var caller = await h.CreateCallerAsync();
        using var a = h.ClientFor(0);
        using var b = h.ClientFor(1);
        // One request through B first: a replica learns the upstream list from its first request.
        using (var first = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        var limited = ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat);
        limited.Headers.Add("x-mock-status", "429");
        limited.Headers.Add("x-mock-retry-after", "120");
        using (var response = await a.SendAsync(limited))
        {
            // No other account: the upstream's answer reaches the client, with its Retry-After.
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        }
        var key = h.Keys.UpstreamCooldown("default/only");
        await Eventually.TrueAsync(async () => (await h.Redis.ExecuteAsync("PTTL", [key])).AsInt64() is > 60_000 and <= 120_000,
            "the cooldown shared in Redis for about Retry-After");
        var catalogB = h.ProxyServices(1).GetRequiredService<UpstreamCatalog>();
        await Eventually.TrueAsync(() => Task.FromResult(catalogB.TryGetHealth("default/only", out var health)
            && health.IsCoolingDown(System.Diagnostics.Stopwatch.GetTimestamp())), "replica B to apply the shared cooldown");

        var before = (await h.MockRequestsAsync()).Count;
        using (var rejected = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(rejected, HttpStatusCode.ServiceUnavailable, "upstream_unavailable", "server_error");
        using (var rejected = await a.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(rejected, HttpStatusCode.ServiceUnavailable, "upstream_unavailable", "server_error");
        Assert.Equal(before, (await h.MockRequestsAsync()).Count);
    }

    [Fact]
    public async Task Requests_in_flight_are_shared_so_max_concurrent_holds_for_the_fleet()
    {
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Account("default/small") with { Limits = new UpstreamLimits { MaxConcurrent = 3 } }, Account("default/free")];
        var a = new Replica(_redis, _keys, clock, accounts);
        var b = new Replica(_redis, _keys, clock, accounts);
        a.Health("default/small").Enter();
        a.Health("default/small").Enter();
        b.Health("default/small").Enter();

        Assert.True(await a.SyncAsync());
        Assert.True(await b.SyncAsync());
        var onB = b.Health("default/small");
        Assert.Equal(2, onB.OthersInFlight);
        Assert.False(onB.UnderConcurrency(3));   // 1 here + 2 on A
        Assert.True(onB.UnderConcurrency(4));
        Assert.True(await a.SyncAsync());
        Assert.Equal(1, a.Health("default/small").OthersInFlight);
        // Accounts without maxConcurrent are not shared.
        Assert.Equal(0, (await _redis.ExecuteAsync("EXISTS", [_keys.UpstreamInFlight("default/free")])).AsInt64());

        // A's requests finish: B sees it at the next syncs.
        a.Health("default/small").Exit();
        a.Health("default/small").Exit();
        Assert.True(await a.SyncAsync());
        Assert.True(await b.SyncAsync());
        Assert.Equal(0, onB.OthersInFlight);
        Assert.True(onB.UnderConcurrency(3));
    }

    [Fact]
    public async Task A_replica_that_stops_syncing_stops_counting_against_max_concurrent()
    {
        // Stamped with Redis' clock, so this waits for real: the stale bound is a few seconds.
        var clock = new ManualTimeProvider(Noon);
        List<UpstreamProjection> accounts = [Account("default/small") with { Limits = new UpstreamLimits { MaxConcurrent = 2 } }];
        var killed = new Replica(_redis, _keys, clock, accounts);
        var survivor = new Replica(_redis, _keys, clock, accounts);
        killed.Health("default/small").Enter();
        killed.Health("default/small").Enter();
        Assert.True(await killed.SyncAsync());
        Assert.True(await survivor.SyncAsync());
        Assert.False(survivor.Health("default/small").UnderConcurrency(2));

        await Eventually.TrueAsync(async () => await survivor.SyncAsync() && survivor.Health("default/small").UnderConcurrency(2),
            "the killed replica's in-flight count to go stale");
        // Only the survivor's own count is left.
        Assert.Equal(1, (await _redis.ExecuteAsync("HLEN", [_keys.UpstreamInFlight("default/small")])).AsInt64());
    }

    [Fact]
    public async Task Account_max_concurrent_holds_across_two_proxy_replicas()
    {
        await using var h = await ProxyHarness.StartAsync(
            proxies: 2,
            settings: new Dictionary<string, string?> { ["TokenGate:Proxy:AccountUsageSyncMilliseconds"] = "100" },
            upstreams: x => [x.MockUpstream("default/one-at-a-time") with { Limits = new UpstreamLimits { MaxConcurrent = 1 } }]);
        var caller = await h.CreateCallerAsync();
        using var a = h.ClientFor(0);
        using var b = h.ClientFor(1);
        // One request through B first: a replica learns the upstream list from its first request.
        using (var first = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);

        // A slow request holds A's only slot...
        var slow = ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat);
        slow.Headers.Add("x-mock-latency-ms", "50000");
        using var giveUp = new CancellationTokenSource();
        var pending = a.SendAsync(slow, giveUp.Token);
        var catalogB = h.ProxyServices(1).GetRequiredService<UpstreamCatalog>();
        await Eventually.TrueAsync(() => Task.FromResult(catalogB.TryGetHealth("default/one-at-a-time", out var health) && health.OthersInFlight == 1),
            "replica B to see A's request in flight");

        // ...so B does not send a second one to the account.
        var before = (await h.MockRequestsAsync()).Count;
        using (var rejected = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat)))
            await ChatCompletionsTests.AssertOpenAiError(rejected, HttpStatusCode.ServiceUnavailable, "upstream_unavailable", "server_error");
        Assert.Equal(before, (await h.MockRequestsAsync()).Count);

        // The client gives up on the slow request; A's slot frees and B may send again.
        await giveUp.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await Eventually.TrueAsync(async () =>
        {
            using var r = await b.SendAsync(ChatCompletionsTests.Post("/v1/chat/completions", caller.ApiKey, Chat));
            return r.StatusCode == HttpStatusCode.OK;
        }, "B to send again once A's request finished");
    }

    private static int ClosedPort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private sealed class ListLogger<T> : ILogger<T>
    {
        private readonly Lock _lock = new();
        private readonly List<(LogLevel Level, string Message)> _entries = [];

        public List<(LogLevel Level, string Message)> Entries
        {
            get { lock (_lock) return [.. _entries]; }
        }

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (_lock) _entries.Add((logLevel, formatter(state, exception)));
        }
    }
}
