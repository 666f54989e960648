using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Gateway.Core.Hosting;
using Gateway.Core.Json;
using Gateway.Core.Keys;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Proxy;
using Gateway.Proxy.Auth;
using Gateway.Proxy.Configuration;
using Gateway.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Gateway.Benchmarks.OperatorScale;

/// <summary>
/// <c>policy-cache</c> (issue #11 item 6, the proxy half of `make bench-operator`): N key projections (default
/// 100,000) under a fresh Redis prefix, then (1) the proxy's first request after start (a real proxy host, GET
/// /v1/models with one of those keys), a first request with a key not cached yet and one with a cached key, each
/// the median of a few; (2) the in-process policy cache's managed memory once every key has been looked up
/// (the most a proxy holds: the cache is filled on demand, never from the whole projection). Prints a table.
/// </summary>
public static class PolicyCacheScaleCommand
{
    private const string Pepper = "bench-policy-cache-pepper-0123456789ab";

    public static async Task<int> RunAsync(CommandLine options)
    {
        var count = (int)options.Number("keys", 100_000);
        var users = Math.Max(1, count / 50);
        var keys = new ProjectionKeys(TestEnvironment.UniqueRedisPrefix());
        var hasher = new KeyHasher(Encoding.UTF8.GetBytes(Pepper));
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
        try
        {
            Console.Error.WriteLine($"policy-cache: writing {count:N0} key projections for {users:N0} users; load {ProcessSampler.LoadAverage()}");
            var plaintexts = new string[count];
            var hashes = new string[count];
            for (var i = 0; i < count; i++)
            {
                plaintexts[i] = ApiKeyFormat.Generate();
                hashes[i] = hasher.Hash(plaintexts[i]);
            }
            await WriteProjectionAsync(redis, keys, hashes, users);

            var (firstMs, coldMs, warmMs) = await TimeProxyRequestsAsync(keys, plaintexts);
            var (bytes, fillSeconds) = await MeasureCacheAsync(redis, keys, hashes);

            Console.WriteLine($"Proxy policy cache with {count:N0} keys in the projection (load average {ProcessSampler.LoadAverage()})");
            Console.WriteLine();
            Console.WriteLine("| measure | value |");
            Console.WriteLine("| --- | --- |");
            Console.WriteLine($"| first request after the proxy started (GET /v1/models, key not cached) | {firstMs:F1} ms |");
            Console.WriteLine($"| request with a key not cached yet (median of 50) | {coldMs:F2} ms |");
            Console.WriteLine($"| request with a cached key (median of 50) | {warmMs:F2} ms |");
            Console.WriteLine($"| policy cache holding all {count:N0} keys: managed memory | {bytes / 1048576.0:F1} MiB ({bytes / (double)count:F0} B per key) |");
            Console.WriteLine($"| filling it (every key looked up once, 64 at a time) | {fillSeconds:F1} s |");
            return 0;
        }
        finally
        {
            await DeletePrefixAsync(redis, keys.Prefix);
        }
    }

    private static async Task WriteProjectionAsync(RespClient redis, ProjectionKeys keys, string[] hashes, int users)
    {
        var pending = new List<Task>(2048);
        for (var u = 0; u < users; u++)
        {
            pending.Add(redis.ExecuteAsync("SET", [keys.User(UserId(u)), JsonSerializer.Serialize(new UserProjection { UserId = UserId(u), Name = $"bench/user-{u}" }, TokenGateJson.Options)]));
            if (pending.Count >= 2000) { await Task.WhenAll(pending); pending.Clear(); }
        }
        for (var i = 0; i < hashes.Length; i++)
        {
            var p = new KeyProjection
            {
                KeyId = Guid.NewGuid().ToString(), Name = $"bench/key-{i}", Version = 1, UserId = UserId(i % users),
                KeyPrefix = "tg-bench", AllowedModels = ["gpt-4o*"],
            };
            pending.Add(redis.ExecuteAsync("SET", [keys.Key(hashes[i]), JsonSerializer.Serialize(p, TokenGateJson.Options)]));
            if (pending.Count >= 2000) { await Task.WhenAll(pending); pending.Clear(); }
        }
        await Task.WhenAll(pending);
        await redis.ExecuteAsync("SET", [keys.Upstreams, "[]"]);
    }

    private static string UserId(int u) => new Guid(u, 0, 0, new byte[8]).ToString();

    /// <summary>A real proxy host: its very first request, then first-time keys, then a cached key.</summary>
    private static async Task<(double First, double Cold, double Warm)> TimeProxyRequestsAsync(ProjectionKeys keys, string[] plaintexts)
    {
        var proxy = ProxyApp.Build(["--urls", "http://127.0.0.1:0"], b => b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = TestEnvironment.Redis,
            ["TokenGate:Pepper"] = Pepper,
            [Gateway.Core.Security.CredentialKeyConfiguration.KeysSetting + ":" + TestCredentialKeys.KeyId] = TestCredentialKeys.Key,
            ["TokenGate:PricesDirectory"] = RepoPaths.Prices,
            ["TokenGate:Redis:KeyPrefix"] = keys.Prefix,
            ["Logging:LogLevel:Default"] = "Warning",
        }));
        await proxy.StartAsync();
        try
        {
            var listeners = proxy.Services.GetRequiredService<Listeners>();
            using var probe = new HttpClient { BaseAddress = listeners.ManagementUrls[0] };
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(await probe.GetAsync("/readyz")).IsSuccessStatusCode && DateTime.UtcNow < deadline) await Task.Delay(50);
            using var http = new HttpClient { BaseAddress = listeners.PublicUrls[0] };
            var first = await TimeAsync(http, plaintexts[0]);
            var cold = new List<double>();
            var warm = new List<double>();
            for (var i = 1; i <= 50; i++) cold.Add(await TimeAsync(http, plaintexts[i * 997 % plaintexts.Length]));
            for (var i = 0; i < 50; i++) warm.Add(await TimeAsync(http, plaintexts[0]));
            return (first, Median(cold), Median(warm));
        }
        finally
        {
            await proxy.StopAsync();
            await proxy.DisposeAsync();
        }
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }

    private static async Task<double> TimeAsync(HttpClient http, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        var started = Stopwatch.GetTimestamp();
        using var response = await http.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"GET /v1/models answered {(int)response.StatusCode}");
        return ms;
    }

    /// <summary>Managed bytes a policy cache holds once every key was looked up (TTL long enough to keep them all).</summary>
    private static async Task<(long Bytes, double Seconds)> MeasureCacheAsync(RespClient redis, ProjectionKeys keys, string[] hashes)
    {
        var cache = new PolicyCache(redis, keys, Options.Create(new ProxyOptions { PolicyCacheTtlSeconds = 3600 }));
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var sw = Stopwatch.StartNew();
        await Parallel.ForEachAsync(hashes, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (h, ct) =>
        {
            if (await cache.GetKeyAsync(h, ct) is null) throw new InvalidOperationException("a key projection is missing");
        });
        var seconds = sw.Elapsed.TotalSeconds;
        var after = GC.GetTotalMemory(forceFullCollection: true);
        GC.KeepAlive(cache);
        return (after - before, seconds);
    }

    /// <summary>Removes this run's keys (SCAN + DEL on its own prefix; never anything else).</summary>
    internal static async Task DeletePrefixAsync(RespClient redis, string prefix)
    {
        var cursor = "0";
        do
        {
            var reply = await redis.ExecuteAsync("SCAN", [cursor, "MATCH", prefix + "*", "COUNT", 5000]);
            cursor = reply.Items[0].AsString()!;
            var found = reply.Items[1].Items;
            if (found.Count > 0)
            {
                var args = new List<RedisArg>(found.Count);
                foreach (var f in found) args.Add(f.AsString()!);
                await redis.ExecuteAsync("DEL", args);
            }
        }
        while (cursor != "0");
    }
}
