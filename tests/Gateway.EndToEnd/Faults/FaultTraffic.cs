using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Operator.Verify;
using Gateway.Testing;
using Npgsql;
using Xunit.Abstractions;

namespace Gateway.EndToEnd.Faults;

/// <summary>Steady client traffic for the fault tests and what they check afterwards.</summary>
internal static class FaultTraffic
{
    /// <summary>How much longer than the short form a run is (TG_CHAOS_SCALE, set by <c>make chaos</c>; 1 in <c>make test</c>):
    /// requests before, during and after each fault, and repeated kills.</summary>
    public static int Scale { get; } = int.TryParse(Environment.GetEnvironmentVariable("TG_CHAOS_SCALE"), out var s) && s > 0 ? s : 1;

    /// <summary>
    /// A key of a user without rate limits (the demo user's 600 requests a minute would refuse the longer runs) and a
    /// large balance, declared in the stack's file source; returns the key the operator issued. <paramref name="name"/>
    /// names the user and its key (another name: another user, whose balance the first one's traffic does not move).
    /// </summary>
    public static async Task<string> LoadKeyAsync(GatewayStack stack, string name = "chaos")
    {
        await File.WriteAllTextAsync(Path.Combine(stack.SamplesDir, name + ".yaml"), $$"""
            apiVersion: tokengate.io/v1alpha1
            kind: UserQuota
            metadata: { name: {{name}}, namespace: default }
            spec:
              user: { name: {{name}}, email: {{name}}@example.com }
              grants: [ { id: {{name}}-load, amount: 1000, reason: fault runs } ]
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: {{name}}, namespace: default }
            spec: { owner: {{name}} }
            """);
        return await Eventually.ReturnsAsync(async () =>
        {
            var secret = await stack.Source.GetSecretAsync("default", name + "-apikey", CancellationToken.None);
            return secret is null ? null : Encoding.UTF8.GetString(secret["OPENAI_API_KEY"]);
        }, "the operator to issue the load key");
    }

    /// <summary>
    /// Keeps a fault going until it has lasted <paramref name="chaos"/> in <c>make chaos</c> (issue #12: Redis unreachable
    /// for 30 s, PostgreSQL stopped for 60 s), so reconnection and backlog are exercised over a realistic outage; the
    /// short form in <c>make test</c> does not wait. A deliberate outage length, not a wait for something to happen.
    /// </summary>
    public static async Task HoldFaultAsync(DateTime since, TimeSpan chaos)
    {
        if (Scale < 10) return;
        var left = since + chaos - DateTime.UtcNow;
        if (left > TimeSpan.Zero) await Task.Delay(left);
    }

    /// <summary>Prints one run's figures, and appends them to TG_CHAOS_REPORT when set (<c>make chaos</c> prints that file).</summary>
    /// <param name="unmetered">Requests answered 200 with neither a usage row nor an open reservation (the tests assert 0).</param>
    /// <param name="reservedOnly">Requests answered 200 whose usage is still an open reservation (the sweeper charges it at lease end).</param>
    /// <param name="note">Figures of the run's own (e.g. takeover times), appended to the line.</param>
    /// <param name="output">The test's output, where the line is written too (xunit does not show the console's).</param>
    public static void Report(string run, IReadOnlyCollection<Outcome> outcomes, long usageRows, int unmetered, int reservedOnly, TimeSpan? recovery, string conservation,
        string? note = null, ITestOutputHelper? output = null)
    {
        var byStatus = string.Join(", ", outcomes.GroupBy(o => o.Status).OrderBy(g => g.Key)
            .Select(g => $"{(g.Key == 0 ? "transport error" : g.Key.ToString(System.Globalization.CultureInfo.InvariantCulture))}: {g.Count()}"));
        var line = $"{run}: sent {outcomes.Count} ({byStatus}); usage rows {usageRows}; "
            + (recovery is { } r ? $"recovered {r.TotalSeconds:0.0} s after the fault ended; " : "")
            + $"conservation {conservation}; unmetered successes {unmetered}, still reserved {reservedOnly}"
            + (note is null ? "" : "; " + note);
        Console.WriteLine(line);
        output?.WriteLine(line);
        if (Environment.GetEnvironmentVariable("TG_CHAOS_REPORT") is { Length: > 0 } file) File.AppendAllText(file, line + Environment.NewLine);
    }

    /// <summary>One request's outcome: its status (0 = the transport failed), the proxy's request id, the body and when it was sent.</summary>
    public sealed record Outcome(int Status, string? RequestId, string Body, DateTime SentAt);

    /// <param name="headers">Extra request headers (e.g. the mock upstream's x-mock-* controls, for a slower stream).</param>
    public static async Task<Outcome> SendAsync(HttpClient http, string key, bool stream, IEnumerable<KeyValuePair<string, string>>? headers = null)
    {
        var sentAt = DateTime.UtcNow;
        var body = stream
            ? """{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}"""
            : """{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        foreach (var (name, value) in headers ?? []) request.Headers.Add(name, value);
        try
        {
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            var id = response.Headers.TryGetValues("x-request-id", out var v) ? v.First() : null;
            return new Outcome((int)response.StatusCode, id, text, sentAt);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
        {
            // A stream cut when Redis died mid-settlement is not a success; 0 marks a transport failure.
            return new Outcome(0, null, e.GetType().Name, sentAt);
        }
    }

    /// <summary>Usage rows per request id.</summary>
    public static async Task<Dictionary<string, long>> UsageRowsAsync(string connectionString, List<string> ids)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT request_id, count(*) FROM usage_log WHERE request_id = ANY(@ids) GROUP BY request_id", connection);
        command.Parameters.AddWithValue("ids", ids.ToArray());
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) result[reader.GetString(0)] = reader.GetInt64(1);
        return result;
    }

    /// <summary>Runs the conservation checker (<c>Gateway.Operator verify</c>) against the stack and asserts it is clean;
    /// returns what it counted (open reservations and quota leases among them).</summary>
    public static Task<VerifyCounts> AssertConservedAsync(GatewayStack stack, string redis) => AssertConservedAsync(stack.PostgresConnectionString, stack.RedisPrefix, redis);

    /// <summary>Runs the conservation checker against a database and a Redis key prefix and asserts it is clean; returns its counts.</summary>
    public static async Task<VerifyCounts> AssertConservedAsync(string postgres, string redisPrefix, string redis)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await VerifyCommand.RunAsync(
        [
            "verify",
            "--ConnectionStrings:Postgres", postgres,
            "--ConnectionStrings:Redis", redis,
            "--TokenGate:Redis:KeyPrefix", redisPrefix,
            "--json",
        ], stdout, stderr);
        Assert.True(code == VerifyCommand.ExitClean, $"verify exited {code}:\n{stdout}{stderr}");
        using var report = JsonDocument.Parse(stdout.ToString());
        return report.RootElement.GetProperty("counts").Deserialize<VerifyCounts>(new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
    }
}
