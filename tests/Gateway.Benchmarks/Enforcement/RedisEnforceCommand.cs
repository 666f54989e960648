using System.Diagnostics;
using System.Globalization;
using Gateway.Core.Enforcement;
using Gateway.Core.Pricing;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Core.Resources;
using Gateway.Core.Usage;

namespace Gateway.Benchmarks.Enforcement;

/// <summary>
/// <c>redis-enforce</c>: runs N admit + settle pairs of the Enforcer against a Redis, one after another,
/// under a unique key prefix, and prints what one pair costs: Redis CPU (usec of evalsha from
/// <c>INFO commandstats</c> deltas — never CONFIG RESETSTAT, the Redis may be shared), commands run by
/// Redis (all commandstats calls deltas except evalsha/eval/info), and bytes allocated in this process
/// (GC.GetTotalAllocatedBytes). On a shared Redis the command counts include other clients' traffic;
/// point it at a private redis-server for exact counts.
/// </summary>
public static class RedisEnforceCommand
{
    public static async Task<int> RunAsync(CommandLine options)
    {
        var address = options.Optional("redis") ?? "127.0.0.1:56379";
        var n = (int)options.Number("n", 5000);
        var warmup = (int)options.Number("warmup", 500);
        var limits = options.Optional("limits") ?? "all";
        // With the pid of a local redis-server, its process CPU time (utime + stime, network handling
        // included) is reported too: less disturbed by a busy machine than the wall-clock usec of commandstats.
        var redisPid = options.Optional("redis-pid");
        // Pairs in flight at once (like concurrent proxy requests sharing one connection); 1 = one after another.
        var concurrency = (int)options.Number("concurrency", 1);
        if (limits is not ("all" or "none")) throw new ArgumentException("--limits must be all or none.");

        await using var redis = await RespClient.ConnectAsync(address);
        var prefix = "tgbench" + Guid.NewGuid().ToString("N")[..10] + ":";
        var keys = new ProjectionKeys(prefix);
        var enforcer = new Enforcer(redis, keys);
        var (key, user) = Caller(limits == "all");
        await redis.ExecuteAsync("SET", [keys.Balance(user.UserId), 1_000_000_000_000_000L]);
        try
        {
            await RunConcurrentAsync(enforcer, key, user, warmup, concurrency);
            var before = await CommandStatsAsync(redis);
            var cpuBefore = ProcessCpuMicros(redisPid);
            var allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            await RunConcurrentAsync(enforcer, key, user, n, concurrency);
            clock.Stop();
            var allocated = GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore;
            var cpuAfter = ProcessCpuMicros(redisPid);
            var after = await CommandStatsAsync(redis);

            var evalUsec = Delta(before, after, "evalsha").Usec + Delta(before, after, "eval").Usec;
            var evalCalls = Delta(before, after, "evalsha").Calls + Delta(before, after, "eval").Calls;
            long commands = 0;
            var perCommand = new List<(string Name, long Calls)>();
            foreach (var name in after.Keys)
            {
                if (name is "evalsha" or "eval" or "info") continue;
                var d = Delta(before, after, name).Calls;
                if (d <= 0) continue;
                commands += d;
                perCommand.Add((name, d));
            }
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(inv, $"redis-enforce limits={limits} pairs={n} concurrency={concurrency} evalsha/pair={(double)evalCalls / n:F2}"));
            Console.WriteLine(string.Create(inv, $"  redis evalsha usec/pair      {(double)evalUsec / n,10:F1}"));
            if (redisPid is not null)
                Console.WriteLine(string.Create(inv, $"  redis process CPU usec/pair  {(double)(cpuAfter - cpuBefore) / n,10:F1}"));
            Console.WriteLine(string.Create(inv, $"  redis commands/pair          {(double)commands / n,10:F1}"));
            Console.WriteLine(string.Create(inv, $"  allocated bytes/pair         {(double)allocated / n,10:F0}"));
            Console.WriteLine(string.Create(inv, $"  wall-clock usec/pair         {clock.Elapsed.TotalMicroseconds / n,10:F1}"));
            foreach (var (name, calls) in perCommand.OrderByDescending(c => c.Calls))
                Console.WriteLine(string.Create(inv, $"    {name,-20} {(double)calls / n,6:F2}/pair"));

            // The two scripts apart: a batch of admissions, then their settlements (in-flight sets grow to
            // the batch size meanwhile, so keep it small).
            var batch = Math.Min(n, 200);
            long admitUsec = 0, settleUsec = 0;
            for (var done = 0; done < n; done += batch)
            {
                var s0 = await CommandStatsAsync(redis);
                var reservations = new List<Reservation>(batch);
                for (var i = 0; i < batch; i++) reservations.Add((await enforcer.AdmitAsync(Admission(key, user))).Reservation!);
                var s1 = await CommandStatsAsync(redis);
                foreach (var r in reservations) await enforcer.SettleAsync(Settle(r));
                var s2 = await CommandStatsAsync(redis);
                admitUsec += Delta(s0, s1, "evalsha").Usec;
                settleUsec += Delta(s1, s2, "evalsha").Usec;
            }
            var split = (n + batch - 1) / batch * batch;
            Console.WriteLine(string.Create(inv, $"  redis usec per admit / settle {(double)admitUsec / split,6:F1} / {(double)settleUsec / split:F1}"));
            return 0;
        }
        finally
        {
            await DeleteKeysAsync(redis, prefix);
        }
    }

    private static (KeyProjection Key, UserProjection User) Caller(bool limited)
    {
        // Limits far above what the run reaches: every check runs, none rejects (like the bench user).
        var key = new KeyProjection
        {
            KeyId = "bench-key",
            Name = "default/bench",
            Version = 1,
            UserId = "bench-user",
            Limits = limited
                ? new KeyLimits
                {
                    RequestsPerMinute = 100_000_000, RequestsPerDay = 1_000_000_000, TokensPerMinute = 100_000_000_000,
                    TokensPerDay = 1_000_000_000_000, MaxConcurrent = 100_000, TokenLimit = 1_000_000_000_000_000, SpendLimit = 1_000_000_000m,
                }
                : null,
        };
        var user = new UserProjection
        {
            UserId = "bench-user",
            Name = "default/bench-user",
            Limits = limited
                ? new RateLimits
                {
                    RequestsPerMinute = 100_000_000, RequestsPerDay = 1_000_000_000, TokensPerMinute = 100_000_000_000,
                    TokensPerDay = 1_000_000_000_000, MaxConcurrent = 100_000,
                }
                : null,
            Budget = limited ? new Budget { Amount = 1_000_000_000m, Period = BudgetPeriods.Monthly, Timezone = "UTC" } : null,
        };
        return (key, user);
    }

    private static Task RunConcurrentAsync(Enforcer enforcer, KeyProjection key, UserProjection user, int count, int concurrency) =>
        Task.WhenAll(Enumerable.Range(0, concurrency).Select(i =>
            Task.Run(() => RunPairsAsync(enforcer, key, user, count / concurrency + (i < count % concurrency ? 1 : 0)))));

    private static async Task RunPairsAsync(Enforcer enforcer, KeyProjection key, UserProjection user, int count)
    {
        for (var i = 0; i < count; i++)
        {
            var admission = await enforcer.AdmitAsync(Admission(key, user));
            var r = admission.Reservation ?? throw new InvalidOperationException($"The bench request was rejected: {admission.Reason}.");
            await enforcer.SettleAsync(Settle(r));
        }
    }

    private static AdmissionRequest Admission(KeyProjection key, UserProjection user) => new()
    {
        RequestId = Guid.NewGuid().ToString("N"),
        Key = key,
        User = user,
        ReservedMicros = 1_234,
        EstimatedInputTokens = 40,
        MaxOutputTokens = 64,
        Model = "gpt-4o-mini",
        Route = "/v1/chat/completions",
        PriceVersion = "bench@1",
    };

    private static Settlement Settle(Reservation r) => new()
    {
        Reservation = r,
        Usage = new UsageEvent
        {
            RequestId = r.RequestId,
            KeyId = r.KeyId,
            KeyVersion = r.KeyVersion,
            UserId = r.UserId,
            Upstream = "default/mock",
            Model = "gpt-4o-mini",
            Route = "/v1/chat/completions",
            Tokens = new TokenCounts(40, 0, 0, 12),
            Cost = Money.FromMicros(321),
            PriceVersion = "bench@1",
            StartedAt = r.StartedAt,
            DurationMs = 1,
            Status = 200,
        },
    };

    private readonly record struct Stat(long Calls, long Usec);

    private static long ProcessCpuMicros(string? pid)
    {
        if (pid is null) return 0;
        // /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised command name.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return ticks * 1_000_000 / 100; // USER_HZ is 100 on Linux
    }

    private static Stat Delta(Dictionary<string, Stat> before, Dictionary<string, Stat> after, string name)
    {
        after.TryGetValue(name, out var a);
        before.TryGetValue(name, out var b);
        return new Stat(a.Calls - b.Calls, a.Usec - b.Usec);
    }

    private static async Task<Dictionary<string, Stat>> CommandStatsAsync(IRedisClient redis)
    {
        var text = (await redis.ExecuteAsync("INFO", ["commandstats"])).AsString() ?? "";
        var stats = new Dictionary<string, Stat>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (!line.StartsWith("cmdstat_", StringComparison.Ordinal)) continue;
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var name = line[8..colon];
            long calls = 0, usec = 0;
            foreach (var part in line[(colon + 1)..].Split(','))
            {
                var kv = part.Split('=');
                if (kv[0] == "calls") calls = long.Parse(kv[1], CultureInfo.InvariantCulture);
                else if (kv[0] == "usec") usec = long.Parse(kv[1], CultureInfo.InvariantCulture);
            }
            stats[name] = new Stat(calls, usec);
        }
        return stats;
    }

    private static async Task DeleteKeysAsync(IRedisClient redis, string prefix)
    {
        var cursor = "0";
        do
        {
            var reply = await redis.ExecuteAsync("SCAN", [cursor, "MATCH", prefix + "*", "COUNT", 1000]);
            cursor = reply.Items[0].AsString()!;
            var found = reply.Items[1].Items;
            if (found.Count > 0) await redis.ExecuteAsync("DEL", found.Select(k => (RedisArg)k.AsString()!).ToArray());
        } while (cursor != "0");
    }
}
