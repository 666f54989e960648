using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Core.Storage;
using Gateway.Operator.Verify;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;

namespace Gateway.EndToEnd.Verify;

/// <summary>The conservation check after real traffic through the proxy: grants, plain and streamed requests on both
/// providers' routes, a failed upstream and a released reservation.</summary>
public sealed class VerifyAfterTrafficTests : IAsyncLifetime
{
    private GatewayStack _stack = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _stack = await GatewayStack.StartAsync();
        _http = new HttpClient { BaseAddress = _stack.ProxyUrl };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _stack.DisposeAsync();
    }

    private static HttpRequestMessage Chat(string key, bool stream = false, params (string Name, string Value)[] headers)
    {
        var body = JsonSerializer.Serialize(new { model = "gpt-4o-mini", stream, messages = new[] { new { role = "user", content = "Count the money twice" } } });
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        foreach (var (name, value) in headers) req.Headers.TryAddWithoutValidation(name, value);
        return req;
    }

    private static HttpRequestMessage Messages(string key, bool stream)
    {
        var body = JsonSerializer.Serialize(new { model = "claude-sonnet-4-5", max_tokens = 64, stream, messages = new[] { new { role = "user", content = "Hello from verify" } } });
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/messages") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        req.Headers.Add("x-api-key", key);
        req.Headers.Add("anthropic-version", "2023-06-01");
        return req;
    }

    private async Task<HttpStatusCode> SendAsync(HttpRequestMessage request)
    {
        using (request)
        using (var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            // Read to the end: a stream is settled when it ends.
            await response.Content.ReadAsByteArrayAsync();
            return response.StatusCode;
        }
    }

    [Fact]
    public async Task Verify_is_clean_after_real_traffic_and_counts_what_was_done()
    {
        var key = await _stack.DemoKeyAsync();
        await Eventually.TrueAsync(async () => await SendAsync(Chat(key)) == HttpStatusCode.OK, "the demo key to be accepted");
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Chat(key)));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Chat(key, stream: true)));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Chat(key, stream: true)));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Messages(key, stream: false)));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Messages(key, stream: true)));
        // The upstream answers 500: the request reached it, so it is settled (at what the upstream reported: nothing).
        Assert.True((int)await SendAsync(Chat(key, false, ("x-mock-status", "500"))) >= 500);
        // The upstream drops the connection before answering: nothing reached it, the reservation is released.
        Assert.True((int)await SendAsync(Chat(key, false, ("x-mock-fault", "drop"))) >= 500);

        // Everything that reached an upstream is in usage_log (the Eventually above may have sent a few more chats).
        await using var db = StorageServiceCollectionExtensions.CreateContext(_stack.PostgresConnectionString);
        await Eventually.TrueAsync(async () => await db.UsageLog.CountAsync() >= 7 && await db.UsageLog.CountAsync(u => u.Status == 500) == 1,
            "the usage rows of every request that reached the upstream");
        var rows = await db.UsageLog.CountAsync();
        var withCost = await db.UsageLog.CountAsync(u => u.Cost > 0);
        var chats = await db.UsageLog.CountAsync(u => u.Model == "gpt-4o-mini" && u.Status == 200);

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        var code = await VerifyCommand.RunAsync(
        [
            "verify", "--json",
            "--ConnectionStrings:Postgres", _stack.PostgresConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:Redis:KeyPrefix", _stack.RedisPrefix,
        ], stdout, stderr);

        Assert.True(code == VerifyCommand.ExitClean, $"verify exited {code}:\n{stdout}{stderr}");
        var counts = JsonDocument.Parse(stdout.ToString()).RootElement.GetProperty("counts");
        long Count(string name) => counts.GetProperty(name).GetInt64();
        Assert.Equal(1, Count("usersChecked"));
        Assert.Equal(1, Count("grantEntries"));
        Assert.Equal(rows, Count("usageRows"));
        // Chats, two messages and the failed request; the dropped one was released and left no row.
        Assert.Equal(chats + 3, rows);
        Assert.Equal(withCost, Count("usageRowsWithCost"));
        Assert.Equal(withCost, Count("consumeEntries"));
        Assert.True(withCost >= 6, $"{withCost} paid requests");
        Assert.Equal(0, Count("openReservations"));
        Assert.Equal(0, Count("pendingUsageEvents"));
        Assert.Equal(0, Count("expiredReservations"));
        // The balance the portal shows is the ledger's; Redis holds it to within the documented rounding.
        var ledger = await db.LedgerEntries.SumAsync(e => e.Amount);
        Assert.Equal(ledger, counts.GetProperty("ledgerSumUsd").GetDecimal());
        Assert.InRange(Count("redisBalanceMicros"), (long)Math.Floor(ledger * 1_000_000m) - Count("roundingAllowanceMicros"), (long)Math.Floor(ledger * 1_000_000m));

        // Never rebuilt, every entry credited one by one: the balance sits exactly on the per-entry rounding.
        var strict = await VerifyCommand.RunAsync(
        [
            "verify", "--strict", "--settle-wait", "0",
            "--ConnectionStrings:Postgres", _stack.PostgresConnectionString,
            "--ConnectionStrings:Redis", TestEnvironment.Redis,
            "--TokenGate:Redis:KeyPrefix", _stack.RedisPrefix,
        ], stdout, stderr);
        Assert.True(strict == VerifyCommand.ExitClean, $"verify --strict exited {strict}:\n{stdout}{stderr}");
    }
}
