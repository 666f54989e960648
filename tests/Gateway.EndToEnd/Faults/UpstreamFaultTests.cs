using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Testing;
using Npgsql;

namespace Gateway.EndToEnd.Faults;

/// <summary>
/// Issue #12, item 2 (short form): upstream fault storms under steady load through two proxy replicas. The load key's
/// user may use two accounts (selector pool=storm): A (priority 0, a <see cref="StormUpstream"/>) and B (priority 1, the
/// stack's mock). One storm after another hits A: slow first byte (beyond the replicas' 8 s time-to-first-byte
/// deadline), cut mid-stream, malformed SSE, 429s with Retry-After, connection refused. Per storm: requests A cannot
/// serve fail over to B before anything reached the client (200 through B); A cools down on both replicas (the
/// tokengate_proxy_upstream_cooldown gauge) and takes traffic again after the storm; a response cut after its first
/// bytes cannot fail over, so its client sees the stream end early (or a provider-shaped 502 when nothing was sent
/// yet) and the proxy meters it as a 502; an answer that is malformed but complete at the HTTP level is passed on and
/// metered by estimate (and counts against A like a cut). Throughout: no 500, no hang, every error provider-shaped,
/// every 200 exactly one usage row, and the conservation check clean at the end.
/// </summary>
public sealed class UpstreamFaultTests
{
    private const string AccountA = "default/storm-a";
    private const string AccountB = "default/storm-b";
    /// <summary>Every request must end within this: 8 s to first byte per attempt, 60 s in all (the replicas' settings), and slack.</summary>
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(90);

    // 8 s to first byte (connect included): far beyond what the mock needs even on a loaded machine, so B never times
    // out; the slow storm's 60 s are far beyond it.
    private static readonly string[] ReplicaSettings =
    [
        "--TokenGate:Proxy:UpstreamTimeToFirstByteSeconds", "8", "--TokenGate:Proxy:UpstreamTotalTimeoutSeconds", "60",
        "--TokenGate:Proxy:CooldownSeconds", "2", "--TokenGate:Proxy:UpstreamConnectTimeoutSeconds", "30",
    ];

    /// <summary>One request: its outcome (status 0: no complete answer), whether it streamed, the replica, when it ended,
    /// and whether it was cut after a 200's headers.</summary>
    private sealed record Sent(FaultTraffic.Outcome Outcome, bool Stream, int Replica, DateTime EndedAt, bool CutAfterHeaders);

    /// <summary>One storm: when it began, when A was in it (after the switch), when it ended, when both replicas had A
    /// cooling down and when A served again.</summary>
    private sealed record Phase(Storm Storm, DateTime Begin, DateTime On, DateTime End, TimeSpan Cooled, TimeSpan Recovered);

    private sealed record UsageRow(string Upstream, int Status, bool Estimated);

    [Fact]
    public async Task Upstream_fault_storms_fail_over_cool_the_account_down_and_meter_every_answer()
    {
        await using var a = await StormUpstream.StartAsync();
        await using var stack = await GatewayStack.StartAsync();
        var key = await StormKeyAsync(stack, a.BaseUrl);
        using var replica0 = await ProxyProcess.StartAsync(stack, ReplicaSettings);
        using var replica1 = await ProxyProcess.StartAsync(stack, ReplicaSettings);
        ProxyProcess[] replicas = [replica0, replica1];
        using var client0 = new HttpClient { BaseAddress = replica0.Url, Timeout = Timeout.InfiniteTimeSpan };
        using var client1 = new HttpClient { BaseAddress = replica1.Url, Timeout = Timeout.InfiniteTimeSpan };
        HttpClient[] clients = [client0, client1];
        using var metrics = new HttpClient();
        for (var r = 0; r < 2; r++)
        {
            var client = clients[r];
            await Eventually.TrueAsync(async () => (await SendAsync(client, 0, key, stream: false)).Outcome.Status == 200, $"the storm key to work through replica {r}");
        }

        var sent = new ConcurrentQueue<Sent>();
        using var stop = new CancellationTokenSource();
        // Two clients per replica, streaming and not in turn, each at most about 100 requests a second: steady load that
        // leaves the shared machine to the rest of the suite (unpaced, the four sent some 800 a second).
        var load = Enumerable.Range(0, 4).Select(worker => Task.Run(async () =>
        {
            var i = 0;
            while (!stop.IsCancellationRequested)
            {
                sent.Enqueue(await SendAsync(clients[worker % 2], worker % 2, key, stream: (i++ + worker / 2) % 2 == 0));
                await Task.Delay(10);
            }
        })).ToArray();
        var phases = new List<Phase>();
        try
        {
            foreach (var storm in (Storm[])[Storm.SlowFirstByte, Storm.CutMidStream, Storm.MalformedSse, Storm.RateLimited, Storm.Refused])
            {
                // Before each storm: A healthy on both replicas and taking traffic.
                foreach (var replica in replicas)
                    await Eventually.TrueAsync(async () => await CooldownGaugeAsync(metrics, replica) == 0, $"account A healthy on a replica before the {storm} storm", TimeSpan.FromSeconds(120));
                var servedBefore = a.Served;
                await Eventually.TrueAsync(() => Task.FromResult(a.Served >= servedBefore + 5), $"account A to take traffic before the {storm} storm", TimeSpan.FromSeconds(120));

                var begin = DateTime.UtcNow;
                await a.BeginAsync(storm);
                var on = DateTime.UtcNow;
                await Eventually.TrueAsync(() => Task.FromResult(sent.Count(s => s.Outcome.SentAt > on) >= 20 * FaultTraffic.Scale), $"traffic during the {storm} storm", TimeSpan.FromSeconds(180));
                foreach (var replica in replicas)
                    await Eventually.TrueAsync(async () => await CooldownGaugeAsync(metrics, replica) == 1, $"account A cooling down on a replica in the {storm} storm", TimeSpan.FromSeconds(120));
                var cooledAt = DateTime.UtcNow;
                var cooled = cooledAt - on;
                // Traffic keeps flowing, around A.
                await Eventually.TrueAsync(() => Task.FromResult(sent.Count(s => s.Outcome.SentAt > cooledAt) >= 10 * FaultTraffic.Scale), $"traffic while A cools down in the {storm} storm", TimeSpan.FromSeconds(180));
                var end = DateTime.UtcNow;
                await a.EndAsync();
                await Eventually.TrueAsync(() => Task.FromResult(a.FirstServedAfterStorm is not null), $"account A to take traffic again after the {storm} storm", TimeSpan.FromSeconds(120));
                phases.Add(new Phase(storm, begin, on, end, cooled, a.FirstServedAfterStorm!.Value - end));
            }
            var last = DateTime.UtcNow;
            await Eventually.TrueAsync(() => Task.FromResult(sent.Count(s => s.Outcome.SentAt > last && s.Outcome.Status == 200) >= 10 * FaultTraffic.Scale), "traffic after the last storm");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(load);
        }

        var all = sent.ToList();
        // Never a hang, never a 500 of the proxy's own making, every error in the provider's shape. A request may end
        // without a whole answer only when its stream was cut: after a 200's headers, or (the proxy resets the connection
        // of a response it cannot complete, and a reset can overtake the bytes before it) with nothing at all, and
        // only if it was in flight during the cut storm (one sent just before the storm can reach A in it).
        Assert.DoesNotContain(all, s => s.Outcome.Body.StartsWith("hang", StringComparison.Ordinal));
        var cutStorm = phases.Single(p => p.Storm == Storm.CutMidStream);
        var afterCutStorm = phases[phases.IndexOf(cutStorm) + 1].Begin;
        foreach (var s in all)
        {
            if (s.Outcome.Status == 0)
            {
                Assert.True(s.CutAfterHeaders || (s.EndedAt >= cutStorm.Begin && s.Outcome.SentAt < afterCutStorm),
                    $"a request failed without an answer from the proxy: {s.Outcome.Body}, sent {(s.Outcome.SentAt - cutStorm.Begin).TotalMilliseconds:0} ms "
                    + $"after the cut storm began, ended {(s.EndedAt - cutStorm.Begin).TotalMilliseconds:0} ms after; phases began at "
                    + string.Join(", ", phases.Select(p => $"{p.Storm} {(p.Begin - cutStorm.Begin).TotalMilliseconds:0} ms")));
                continue;
            }
            Assert.True(s.Outcome.Status is 200 or 502 or 503 or 504, $"status {s.Outcome.Status}: {s.Outcome.Body[..Math.Min(300, s.Outcome.Body.Length)]}");
            if (s.Outcome.Status != 200) AssertOpenAiError(s.Outcome.Body);
        }

        // Metering: every 200 and every answer cut after its headers has exactly one usage row.
        // (With B healthy a 502 is only ever A's cut before anything reached the client, which is metered too.)
        var metered = all.Where(s => s.Outcome.RequestId is not null && (s.Outcome.Status is 200 or 502 || s.CutAfterHeaders)).Select(s => s.Outcome.RequestId!).ToList();
        var rows = await Eventually.ReturnsAsync(async () =>
        {
            var found = await UsageAsync(stack.PostgresConnectionString, metered);
            return metered.All(found.ContainsKey) ? found : null;
        }, "every answered request's usage row", TimeSpan.FromSeconds(120));
        Assert.All(rows, r => Assert.Single(r.Value));
        Assert.All(all.Where(s => s.Outcome.Status == 200), s => Assert.NotNull(s.Outcome.RequestId));
        // And the money adds up (before the figures below say so).
        await FaultTraffic.AssertConservedAsync(stack, stack.Redis);

        for (var p = 0; p < phases.Count; p++)
        {
            var phase = phases[p];
            var next = p + 1 < phases.Count ? phases[p + 1].Begin : DateTime.MaxValue;
            // In A's storm and finished before it ended: what A alone would have answered.
            var during = all.Where(s => s.Outcome.SentAt >= phase.On && s.EndedAt < phase.End).ToList();
            Assert.NotEmpty(during);
            var served = during.Where(s => s.Outcome.Status == 200).Select(s => rows[s.Outcome.RequestId!][0]).ToList();
            switch (phase.Storm)
            {
                case Storm.SlowFirstByte or Storm.RateLimited or Storm.Refused:
                    // Failed over before the first byte: every request answered, by B.
                    Assert.All(during, s => Assert.Equal(200, s.Outcome.Status));
                    Assert.All(served, u => Assert.Equal(AccountB, u.Upstream));
                    break;
                case Storm.CutMidStream:
                    // A cut cannot fail over once bytes were sent: it ends early (or is a 502), and is metered as a 502 of A.
                    var cuts = during.Where(s => s.Outcome.Status != 200).ToList();
                    Assert.NotEmpty(cuts);
                    Assert.All(cuts, s => Assert.True(s.Outcome.Status is 0 or 502, s.Outcome.Body));
                    Assert.All(cuts.Where(s => s.Outcome.RequestId is not null), s => Assert.Equal((AccountA, 502), (rows[s.Outcome.RequestId!][0].Upstream, rows[s.Outcome.RequestId!][0].Status)));
                    Assert.All(served, u => Assert.Equal(AccountB, u.Upstream));
                    Assert.NotEmpty(served);
                    break;
                case Storm.MalformedSse:
                    // A's malformed 200s are passed on as they came (the answer had begun) and metered by estimate (their
                    // usage is missing or invalid); once A cools down, B answers.
                    Assert.All(during, s => Assert.Equal(200, s.Outcome.Status));
                    Assert.All(served.Where(u => u.Upstream == AccountA), u => Assert.True(u.Estimated));
                    Assert.Contains(served, u => u.Upstream == AccountA);
                    Assert.Contains(served, u => u.Upstream == AccountB);
                    break;
            }
            var outcomes = all.Where(s => s.Outcome.SentAt >= phase.Begin && s.Outcome.SentAt < next).Select(s => s.Outcome).ToList();
            var ids = outcomes.Where(o => o.RequestId is not null).Select(o => o.RequestId!).ToList();
            var unmetered = outcomes.Count(o => o.Status == 200 && (o.RequestId is null || !rows.ContainsKey(o.RequestId)));
            Assert.Equal(0, unmetered);
            FaultTraffic.Report(
                $"upstream storm on one of two accounts, two replicas: {phase.Storm}"
                + $" (A seen cooling down on both replicas {phase.Cooled.TotalSeconds:0.0} s after it began)"
                + $"; slowest request {all.Where(s => s.Outcome.SentAt >= phase.Begin && s.Outcome.SentAt < next).Max(s => (s.EndedAt - s.Outcome.SentAt).TotalSeconds):0.0} s"
                + $"; to B {outcomes.Count(o => o.RequestId is not null && rows.TryGetValue(o.RequestId, out var u) && u[0].Upstream == AccountB)}",
                outcomes, ids.Count(rows.ContainsKey), unmetered, 0, phase.Recovered, "clean");
        }
    }

    /// <summary>Accounts A and B, a user who may use only them, and its key; returns the key the operator issued.</summary>
    private static async Task<string> StormKeyAsync(GatewayStack stack, Uri a)
    {
        var b = stack.MockUrl.ToString().TrimEnd('/');
        await File.WriteAllTextAsync(Path.Combine(stack.SamplesDir, "storm.yaml"), $$"""
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata: { name: storm-a, namespace: default, labels: { pool: storm } }
            spec:
              provider: openai-compatible
              baseUrl: {{a.ToString().TrimEnd('/')}}/v1
              credentials: { apiKeySecretRef: { name: mock-upstream-credentials, key: apiKey } }
              models: [ { name: gpt-4o-mini } ]
              priority: 0
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata: { name: storm-b, namespace: default, labels: { pool: storm } }
            spec:
              provider: openai-compatible
              baseUrl: {{b}}/v1
              credentials: { apiKeySecretRef: { name: mock-upstream-credentials, key: apiKey } }
              models: [ { name: gpt-4o-mini } ]
              priority: 1
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UserQuota
            metadata: { name: storm, namespace: default }
            spec:
              user: { name: storm, email: storm@example.com }
              grants: [ { id: storm-load, amount: 1000, reason: upstream fault runs } ]
              upstreamSelector: { matchLabels: { pool: storm } }
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: storm, namespace: default }
            spec: { owner: storm }
            """);
        return await Eventually.ReturnsAsync(async () =>
        {
            var secret = await stack.Source.GetSecretAsync("default", "storm-apikey", CancellationToken.None);
            return secret is null ? null : Encoding.UTF8.GetString(secret["OPENAI_API_KEY"]);
        }, "the operator to issue the storm key");
    }

    /// <summary>Sends one chat completion and reads the whole answer within <see cref="Bound"/>.</summary>
    private static async Task<Sent> SendAsync(HttpClient http, int replica, string key, bool stream)
    {
        var sentAt = DateTime.UtcNow;
        var body = stream
            ? """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}"""
            : """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var deadline = new CancellationTokenSource(Bound);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
        {
            return new Sent(new FaultTraffic.Outcome(0, null, (deadline.IsCancellationRequested ? "hang: " : "") + e.GetType().Name, sentAt), stream, replica, DateTime.UtcNow, false);
        }
        using (response)
        {
            var id = response.Headers.TryGetValues("x-request-id", out var v) ? v.First() : null;
            try
            {
                var text = await response.Content.ReadAsStringAsync(deadline.Token);
                return new Sent(new FaultTraffic.Outcome((int)response.StatusCode, id, text, sentAt), stream, replica, DateTime.UtcNow, false);
            }
            catch (Exception e) when (e is HttpRequestException or IOException or OperationCanceledException)
            {
                return new Sent(new FaultTraffic.Outcome(0, id, (deadline.IsCancellationRequested ? "hang: " : "cut after the headers: ") + e.GetType().Name, sentAt),
                    stream, replica, DateTime.UtcNow, CutAfterHeaders: !deadline.IsCancellationRequested && response.StatusCode == System.Net.HttpStatusCode.OK);
            }
        }
    }

    /// <summary>The replica's tokengate_proxy_upstream_cooldown for account A (1 cooling down or half-open, 0 not), or -1 before it knows A.</summary>
    private static async Task<int> CooldownGaugeAsync(HttpClient http, ProxyProcess replica)
    {
        var text = await http.GetStringAsync(new Uri(replica.ManagementUrl, "metrics"));
        var prefix = "tokengate_proxy_upstream_cooldown{upstream=\"" + AccountA + "\"} ";
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(prefix, StringComparison.Ordinal)) return int.Parse(line.AsSpan(prefix.Length).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        }
        return -1;
    }

    private static void AssertOpenAiError(string body)
    {
        using var error = JsonDocument.Parse(body);
        var e = error.RootElement.GetProperty("error");
        Assert.False(string.IsNullOrEmpty(e.GetProperty("message").GetString()), body);
        Assert.Equal(JsonValueKind.String, e.GetProperty("type").ValueKind);
    }

    /// <summary>Usage rows per request id (more than one would be a double charge).</summary>
    private static async Task<Dictionary<string, List<UsageRow>>> UsageAsync(string connectionString, List<string> ids)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT request_id, upstream, status, estimated FROM usage_log WHERE request_id = ANY(@ids)", connection);
        command.Parameters.AddWithValue("ids", ids.ToArray());
        var result = new Dictionary<string, List<UsageRow>>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var id = reader.GetString(0);
            if (!result.TryGetValue(id, out var list)) result[id] = list = [];
            list.Add(new UsageRow(reader.GetString(1), reader.GetInt32(2), reader.GetBoolean(3)));
        }
        return result;
    }
}
