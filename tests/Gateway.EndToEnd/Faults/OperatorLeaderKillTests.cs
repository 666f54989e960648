using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;
using Npgsql;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): the operator leader SIGKILLed under steady traffic, in Kubernetes mode (two
/// operator processes with leader election on the fake API server, a 4 s lease). The proxy serves throughout without
/// the operator; the standby takes the lease once it has expired and works: a grant added after the kill is credited,
/// the usage of requests sent after the kill reaches usage_log, and what the dead leader's ledger writer had read but
/// not acknowledged is persisted while traffic goes on. Every grant is credited once (ledger and Redis), every served
/// request has one usage row, no request id is recorded twice, and the conservation check is clean. make chaos kills
/// TG_CHAOS_SCALE times, each time the current leader, with the killed pod replaced by a new standby.
/// </summary>
public sealed class OperatorLeaderKillTests
{
    // Liveness bound for a takeover on a loaded 2-core machine; the figures are reported, not asserted.
    private static readonly TimeSpan TakeoverSlack = TimeSpan.FromSeconds(30);

    private sealed record Roles(OperatorProcess Leader, OperatorProcess Standby);

    private sealed record Round(TimeSpan Takeover, TimeSpan Working, long LeftPending);

    [Fact]
    public async Task The_leader_killed_under_traffic_is_replaced_within_its_lease_with_nothing_refused_credited_twice_or_persisted_twice()
    {
        await using var stack = await KubernetesFaultStack.StartAsync();
        var replicas = new List<OperatorProcess> { await stack.StartOperatorAsync("operator-1"), await stack.StartOperatorAsync("operator-2") };
        var key = await stack.KeyAsync();
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl, Timeout = TimeSpan.FromSeconds(60) };
        await Eventually.TrueAsync(async () => (await FaultTraffic.SendAsync(http, key, stream: false)).Status == 200, "the key to work");
        var userId = (await stack.UserIdAsync())!;
        // The demo user's traffic goes to its shard's usage stream.
        var usageStream = new ProjectionKeys(stack.RedisPrefix).UsageStream(ProjectionKeys.ShardOf(userId));
        // ProjectionWriter's set of the grant ids the Redis balance has been credited with.
        var grantsKey = new ProjectionKeys(stack.RedisPrefix).BalanceGrants(userId);
        await using var redis = await RespClient.ConnectAsync(TestEnvironment.Redis);

        var outcomes = new ConcurrentQueue<FaultTraffic.Outcome>();
        using var stop = new CancellationTokenSource();
        var load = Enumerable.Range(0, 2).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested) outcomes.Enqueue(await FaultTraffic.SendAsync(http, key, stream: (i++ + worker) % 2 == 0));
        })).ToArray();
        var grants = new List<string> { "chaos-load" };
        var rounds = new List<Round>();
        try
        {
            for (var round = 0; round < FaultTraffic.Scale; round++)
            {
                var since = DateTime.UtcNow;
                await Eventually.TrueAsync(() => Task.FromResult(outcomes.Count(o => o.SentAt > since && o.Status == 200) >= 10), "traffic before the kill");
                var roles = await RolesAsync(stack, replicas);

                // A grant added just before the kill (the leader may die crediting it), and one right after.
                grants.Add($"before-kill-{round}");
                await stack.AddGrantAsync(grants[^1], 1m);
                var leftPending = await KillMidBatchAsync(roles.Leader, redis, usageStream);
                var killedAt = DateTime.UtcNow;
                var lastRenew = (await stack.LeaseAsync())!.Spec;
                grants.Add($"after-kill-{round}");
                await stack.AddGrantAsync(grants[^1], 2m);

                // Safety and liveness of the election: the standby took the lease once it had expired, and soon enough.
                var lease = await Eventually.ReturnsAsync(async () => await stack.LeaseAsync() is { } l && roles.Standby.Holds(l.Spec.HolderIdentity) ? l : null,
                    "the standby to take over", KubernetesFaultStack.LeaseDuration + TakeoverSlack);
                var acquired = lease.Spec.AcquireTime!.Value;
                if (roles.Leader.Holds(lastRenew.HolderIdentity))
                    Assert.True(acquired >= lastRenew.RenewTime!.Value + KubernetesFaultStack.LeaseDuration - TimeSpan.FromMilliseconds(1),
                        $"acquired at {acquired:O}, before the lease renewed at {lastRenew.RenewTime:O} expired");

                // Working: the grant added after the kill is credited, and requests sent after the kill are persisted.
                await Eventually.TrueAsync(async () => (await redis.ExecuteAsync("SISMEMBER", [grantsKey, grants[^1]])).AsInt64() == 1,
                    "the new leader to credit the grant added after the kill");
                var afterKill = await Eventually.ReturnsAsync(() => Task.FromResult(ServedSince(outcomes, killedAt, 5)), "requests served after the kill");
                await Eventually.TrueAsync(async () => (await FaultTraffic.UsageRowsAsync(stack.Database.ConnectionString, afterKill)).Count == afterKill.Count,
                    "the usage of requests sent after the kill to reach usage_log");
                rounds.Add(new Round(acquired.UtcDateTime - killedAt, DateTime.UtcNow - killedAt, leftPending));

                // What the dead leader's writer had read but not acknowledged (committed or not) is taken over while
                // traffic goes on: persisted, and acknowledged, or the stream could not be trimmed past it and would grow.
                var beforeKill = outcomes.Where(o => o.Status == 200 && o.SentAt < killedAt).Select(o => o.RequestId!).ToList();
                await Eventually.TrueAsync(async () => await PendingAsync(redis, usageStream, roles.Leader.LedgerConsumer) == 0
                    && (await FaultTraffic.UsageRowsAsync(stack.Database.ConnectionString, beforeKill)).Count == beforeKill.Count,
                    $"the {leftPending} entries the dead leader left pending to be taken over under traffic, and the usage served before the kill persisted");

                // The killed pod is replaced by a new standby (a new pod name, as a Deployment's replacement has).
                replicas.Remove(roles.Leader);
                replicas.Add(await stack.StartOperatorAsync($"operator-{round + 3}"));
            }
        }
        catch (TimeoutException e)
        {
            // What the replicas said (warnings, leader election) is the first thing to read when a round gets stuck.
            throw new TimeoutException(e.Message + string.Concat(replicas.Select(r => $"\n--- {r.Name}:\n{r.RecentLog}")), e);
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        // The proxy does not need the operator to serve: nothing was refused or cut because of a kill.
        var refused = outcomes.Where(o => o.Status != 200).ToList();
        Assert.True(refused.Count == 0, $"{refused.Count} of {outcomes.Count} requests failed, e.g. {refused.FirstOrDefault()}");

        // Every served request has exactly one usage row; no request id is recorded twice anywhere.
        var served = outcomes.Select(o => o.RequestId!).ToList();
        await Eventually.TrueAsync(async () =>
        {
            var rows = await FaultTraffic.UsageRowsAsync(stack.Database.ConnectionString, served);
            Assert.DoesNotContain(rows, r => r.Value > 1);
            return served.All(rows.ContainsKey);
        }, "every served request to have its usage row");
        Assert.Empty(await ScalarsAsync(stack, "SELECT request_id FROM usage_log GROUP BY request_id HAVING count(*) > 1"));
        Assert.Empty(await ScalarsAsync(stack, "SELECT request_id FROM ledger_entries WHERE request_id IS NOT NULL GROUP BY request_id HAVING count(*) > 1"));

        // Every grant credited exactly once: one ledger row each, and in the Redis balance once (the set, and the
        // conservation check: Σ ledger = balance + what is in flight).
        var grantRows = await ScalarsAsync(stack, $"SELECT grant_id FROM ledger_entries WHERE kind = 'grant' AND user_id = '{userId}'");
        Assert.Equal(grants.Order(StringComparer.Ordinal), grantRows.Order(StringComparer.Ordinal));
        var credited = (await redis.ExecuteAsync("SMEMBERS", [grantsKey])).Items.Select(i => i.AsString()!);
        Assert.Equal(grants.Order(StringComparer.Ordinal), credited.Order(StringComparer.Ordinal));
        await FaultTraffic.AssertConservedAsync(stack.Database.ConnectionString, stack.RedisPrefix, TestEnvironment.Redis);

        var persisted = await FaultTraffic.UsageRowsAsync(stack.Database.ConnectionString, served);
        var inv = CultureInfo.InvariantCulture;
        FaultTraffic.Report($"operator leader SIGKILLed x{rounds.Count}", outcomes, persisted.Count, served.Count(id => !persisted.ContainsKey(id)), 0, null, "clean",
            $"lease {KubernetesFaultStack.LeaseDuration.TotalSeconds.ToString("0", inv)} s: standby leader after "
            + string.Join("/", rounds.Select(r => r.Takeover.TotalSeconds.ToString("0.0", inv))) + " s, working (grant credited, new usage persisted) after "
            + string.Join("/", rounds.Select(r => r.Working.TotalSeconds.ToString("0.0", inv))) + " s; usage entries left pending by the killed leader "
            + rounds.Sum(r => r.LeftPending).ToString(inv) + $"; grants {grants.Count}, each credited once");
    }

    /// <summary>Who holds the Lease now (a loaded machine may have moved the short lease since the last round).</summary>
    private static Task<Roles> RolesAsync(KubernetesFaultStack stack, List<OperatorProcess> replicas) => Eventually.ReturnsAsync(async () =>
    {
        var holder = (await stack.LeaseAsync())?.Spec.HolderIdentity;
        var leader = replicas.FirstOrDefault(r => r.Holds(holder));
        return leader is null ? null : new Roles(leader, replicas.Single(r => r != leader));
    }, "a leader among the replicas");

    /// <summary>
    /// SIGKILLs the leader, preferably while its ledger writer holds usage events it has read and not acknowledged
    /// (between its read and its acknowledgement, the window where a crash leaves them pending, possibly committed
    /// already); tries for a few seconds. Returns how many entries it left pending.
    /// </summary>
    private static async Task<long> KillMidBatchAsync(OperatorProcess leader, RespClient redis, string usageStream)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(5);
        while (DateTime.UtcNow < until && await PendingAsync(redis, usageStream, leader.LedgerConsumer) == 0) await Task.Delay(1);
        // (The writer may still acknowledge in the few ms the kill takes: then it left nothing, which is reported.)
        leader.Kill();
        return await PendingAsync(redis, usageStream, leader.LedgerConsumer);
    }

    private static async Task<long> PendingAsync(RespClient redis, string usageStream, string consumer)
    {
        try
        {
            return (await redis.StreamPendingAsync(usageStream, ProjectionKeys.UsageGroup)).Consumers.GetValueOrDefault(consumer);
        }
        catch (RedisServerException e) when (e.HasPrefix("NOGROUP"))
        {
            return 0;
        }
    }

    private static List<string>? ServedSince(IEnumerable<FaultTraffic.Outcome> outcomes, DateTime since, int count)
    {
        var ids = outcomes.Where(o => o.Status == 200 && o.SentAt > since).Take(count).Select(o => o.RequestId!).ToList();
        return ids.Count == count ? ids : null;
    }

    private static async Task<List<string>> ScalarsAsync(KubernetesFaultStack stack, string sql)
    {
        await using var connection = new NpgsqlConnection(stack.Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        var values = new List<string>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) values.Add(reader.GetString(0));
        return values;
    }
}
