using System.Diagnostics;
using System.Globalization;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Benchmarks.OperatorScale;

/// <summary>
/// <c>operator-scale</c> (issue #11 item 6, `make bench-operator`): N ApiKeys, M UserQuotas and U UpstreamAccounts
/// on an API server (the loopback fake, or a real kube-apiserver with <c>--cluster real</c>), then the operator is
/// started as its own process and timed to every object Ready; its CPU seconds and peak working set; its CPU,
/// reconciles and API requests over an idle window with nothing changing; and a rotation storm (R rotate
/// annotations at once, time to all rotated). Prints one Markdown table.
/// </summary>
public static class OperatorScaleCommand
{
    private const string Namespace = "bench";
    private const string Pepper = "bench-operator-scale-pepper-0123456789";

    public static async Task<int> RunAsync(CommandLine options)
    {
        var keys = (int)options.Number("keys", 10_000);
        var users = (int)options.Number("users", 2_000);
        var upstreams = (int)options.Number("upstreams", 50);
        var rotations = Math.Min(keys, (int)options.Number("rotate", 1_000));
        var idle = TimeSpan.FromSeconds(options.Number("idle", 60));
        var deadline = TimeSpan.FromSeconds(options.Number("timeout", 1_800));
        var clusterKind = options.Optional("cluster") ?? "fake";
        var operatorDll = options.Required("operator-dll");
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
        var ct = cts.Token;

        Console.Error.WriteLine($"operator-scale: {keys} ApiKeys, {users} UserQuotas, {upstreams} UpstreamAccounts on the {clusterKind} API server; load {ProcessSampler.LoadAverage()}");
        await using IKubeTestCluster cluster = clusterKind switch
        {
            "fake" => await FakeKubeCluster.StartAsync(Path.Combine(RepoPaths.Root, "config", "crd")),
            "real" when EnvtestAssets.Available => await RealKubeCluster.StartAsync(RepoPaths.Root),
            "real" => throw new ArgumentException(EnvtestAssets.Unavailable),
            _ => throw new ArgumentException("--cluster must be fake or real."),
        };
        await using var db = await TestDatabase.CreateAsync();
        await cluster.EnsureNamespaceAsync(Namespace);
        await cluster.GrantLeaderElectionInAsync(Namespace);
        var world = new ScaleObjects(cluster.Admin, Namespace, keys, users, upstreams);

        var sw = Stopwatch.StartNew();
        await world.CreateAsync(ct);
        var createSeconds = sw.Elapsed.TotalSeconds;
        Console.Error.WriteLine($"created {world.Total} objects in {createSeconds:F1} s");

        var logPath = Path.Combine(Path.GetTempPath(), $"tg-operator-scale-{clusterKind}.log");
        var redisPrefix = TestEnvironment.UniqueRedisPrefix();
        Console.Error.WriteLine($"operator log {logPath}, Redis prefix {redisPrefix} (removed at the end)");
        try
        {
            await using var op = OperatorProcess.Start(operatorDll, cluster.OperatorKubeconfigPath, Namespace, db.ConnectionString,
                redisPrefix, Pepper, logPath);
            return await MeasureAsync(op, cluster, world, clusterKind, (keys, users, upstreams, rotations), createSeconds, idle, deadline, logPath, ct);
        }
        finally
        {
            // The operator's projection under this run's own prefix (shared Redis: never anything else).
            await using var redis = await Gateway.Core.Redis.RespClient.ConnectAsync(TestEnvironment.Redis);
            await PolicyCacheScaleCommand.DeletePrefixAsync(redis, redisPrefix);
        }
    }

    private static async Task<int> MeasureAsync(OperatorProcess op, IKubeTestCluster cluster, ScaleObjects world, string clusterKind,
        (int Keys, int Users, int Upstreams, int Rotations) size, double createSeconds, TimeSpan idle, TimeSpan deadline, string logPath, CancellationToken ct)
    {
        var (keys, users, upstreams, rotations) = size;
        var sw = Stopwatch.StartNew();
        var ready = 0;
        while (ready < world.Total)
        {
            if (op.HasExited) throw new InvalidOperationException($"the operator exited; see {logPath}");
            if (sw.Elapsed > deadline) throw new TimeoutException($"only {ready} of {world.Total} objects Ready after {deadline}; see {logPath}");
            await Task.Delay(TimeSpan.FromSeconds(2), ct);
            ready = await world.CountReadyAsync(ct);
            Console.Error.WriteLine($"  {sw.Elapsed.TotalSeconds,6:F1} s: {ready}/{world.Total} Ready, operator CPU {op.Sampler.CpuSeconds():F1} s, RSS {op.Sampler.WorkingSetMiB():F0} MiB");
        }
        var coldSeconds = sw.Elapsed.TotalSeconds;
        var coldCpu = op.Sampler.CpuSeconds();
        var coldPeak = op.Sampler.PeakWorkingSetMiB();
        var coldReconciles = await op.ReconcilesAsync(ct);

        // Steady state before the idle window: at least one status-feed pass (TokenGate:ResyncInterval, 60 s) after the
        // last object turned Ready — right after a start it reconciles once the owners of the keys created since —
        // and then a quiet 10 s (the 50 UpstreamAccounts' own resync is ~8 reconciles in 10 s).
        await Task.Delay(TimeSpan.FromSeconds(65), ct);
        for (var settle = 0; settle < 12; settle++)
        {
            var r0 = await op.ReconcilesAsync(ct);
            await Task.Delay(TimeSpan.FromSeconds(10), ct);
            if (await op.ReconcilesAsync(ct) - r0 <= 100) break;
        }
        var idleCpu0 = op.Sampler.CpuSeconds();
        var idleRec0 = await op.ReconcilesAsync(ct);
        var idleReq0 = cluster.Fake?.Requests.Count;
        sw.Restart();
        await Task.Delay(idle, ct);
        var idleSeconds = sw.Elapsed.TotalSeconds;
        var idleCpu = op.Sampler.CpuSeconds() - idleCpu0;
        var idleRec = await op.ReconcilesAsync(ct) - idleRec0;
        var idleReq = cluster.Fake is { } fake ? fake.Requests.Count - idleReq0 : null;
        Console.Error.WriteLine($"idle {idleSeconds:F0} s: {idleCpu:F2} CPU s, {idleRec} reconciles, {(idleReq is null ? "n/a" : idleReq.ToString())} API requests");

        var before = await world.KeyVersionsAsync(ct);
        var stormCpu0 = op.Sampler.CpuSeconds();
        sw.Restart();
        await world.AnnotateRotateAsync(rotations, DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture), ct);
        var annotateSeconds = sw.Elapsed.TotalSeconds;
        var rotated = 0;
        while (rotated < rotations)
        {
            if (op.HasExited) throw new InvalidOperationException($"the operator exited; see {logPath}");
            if (sw.Elapsed > deadline) throw new TimeoutException($"only {rotated} of {rotations} keys rotated after {deadline}; see {logPath}");
            await Task.Delay(TimeSpan.FromSeconds(1), ct);
            var now = await world.KeyVersionsAsync(ct);
            rotated = Enumerable.Range(0, rotations).Count(i => now.GetValueOrDefault(ScaleObjects.KeyName(i)) > before.GetValueOrDefault(ScaleObjects.KeyName(i)));
            Console.Error.WriteLine($"  {sw.Elapsed.TotalSeconds,6:F1} s: {rotated}/{rotations} rotated");
        }
        var stormSeconds = sw.Elapsed.TotalSeconds;
        var stormCpu = op.Sampler.CpuSeconds() - stormCpu0;
        var peak = op.Sampler.PeakWorkingSetMiB();

        Console.WriteLine($"Operator at scale, {clusterKind} API server: {keys:N0} ApiKeys, {users:N0} UserQuotas, {upstreams} UpstreamAccounts (created in {createSeconds:F0} s); load average {ProcessSampler.LoadAverage()}");
        Console.WriteLine();
        Console.WriteLine("| measure | value |");
        Console.WriteLine("| --- | --- |");
        Console.WriteLine($"| start → all {world.Total:N0} objects Ready | {coldSeconds:F1} s |");
        Console.WriteLine($"| operator CPU until all Ready | {coldCpu:F1} s |");
        Console.WriteLine($"| reconciles until all Ready | {coldReconciles:N0} |");
        Console.WriteLine($"| peak working set (VmHWM), cold start | {coldPeak:F0} MiB |");
        Console.WriteLine($"| idle {idleSeconds:F0} s, nothing changing: CPU | {idleCpu:F2} s ({100 * idleCpu / idleSeconds:F1} % of a core) |");
        Console.WriteLine($"| idle: reconciles | {idleRec:N0} |");
        Console.WriteLine($"| idle: API requests by the operator | {(idleReq is null ? "n/a (real server)" : idleReq.Value.ToString("N0", CultureInfo.InvariantCulture))} |");
        Console.WriteLine($"| rotation storm: {rotations:N0} annotations (sent in {annotateSeconds:F1} s) → all rotated | {stormSeconds:F1} s |");
        Console.WriteLine($"| rotation storm: operator CPU | {stormCpu:F1} s |");
        Console.WriteLine($"| peak working set (VmHWM), whole run | {peak:F0} MiB |");
        return 0;
    }
}
