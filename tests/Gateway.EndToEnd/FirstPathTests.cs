using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Core.Storage;
using Gateway.Testing;
using Microsoft.EntityFrameworkCore;

namespace Gateway.EndToEnd;

/// <summary>Issue 2's acceptance path, end to end through real servers.</summary>
public sealed class FirstPathTests : IAsyncLifetime
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

    private HttpRequestMessage Chat(string key, string model = "gpt-4o-mini", bool stream = false)
    {
        var body = JsonSerializer.Serialize(new { model, stream, messages = new[] { new { role = "user", content = "Hello from the end-to-end test" } } });
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return req;
    }

    private TokenGateDbContext Db() => StorageServiceCollectionExtensions.CreateContext(_stack.PostgresConnectionString);

    [Fact]
    public async Task Demo_key_lists_models_chats_and_is_billed_in_usage_log()
    {
        var key = await _stack.DemoKeyAsync();

        // Models: exactly what the sample UpstreamAccount serves.
        var models = await Eventually.ReturnsAsync(async () =>
        {
            using var r = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "v1/models") { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } });
            return r.StatusCode == HttpStatusCode.OK ? await r.Content.ReadAsStringAsync() : null;
        }, "the key to be accepted by the proxy");
        using (var doc = JsonDocument.Parse(models))
        {
            var ids = doc.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).Order(StringComparer.Ordinal).ToArray();
            Assert.Equal(["claude-sonnet-4-5", "gpt-4o", "gpt-4o-mini", "text-embedding-3-small"], ids);
        }

        // A chat completion returns the mock's answer with usage.
        using var resp = await _http.SendAsync(Chat(key));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var requestId = Assert.Single(resp.Headers.GetValues("x-request-id"));
        using var body = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        Assert.StartsWith("This is a mock response", body.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString(), StringComparison.Ordinal);
        var usage = body.RootElement.GetProperty("usage");
        var promptTokens = usage.GetProperty("prompt_tokens").GetInt64();
        var completionTokens = usage.GetProperty("completion_tokens").GetInt64();

        // Within a couple of seconds usage_log has the row, with the tokens and the cost of the price table.
        var row = await Eventually.ReturnsAsync(async () =>
        {
            await using var db = Db();
            return await db.UsageLog.SingleOrDefaultAsync(u => u.RequestId == requestId);
        }, "the usage row", TimeSpan.FromSeconds(5));
        Assert.Equal(promptTokens, row.InputTokens);
        Assert.Equal(completionTokens, row.OutputTokens);
        Assert.Equal((promptTokens * 0.15m + completionTokens * 0.60m) / 1_000_000m, row.Cost);
        Assert.True(row.Cost > 0);
        Assert.Equal("2026-11-01", row.PriceVersion);
        Assert.Equal("gpt-4o-mini", row.Model);
        await using (var db = Db())
        {
            var consume = await db.LedgerEntries.SingleAsync(e => e.RequestId == requestId && e.Kind == LedgerKinds.Consume);
            Assert.Equal(-row.Cost, consume.Amount);
        }
    }

    [Fact]
    public async Task Streaming_chat_is_passed_through_and_metered()
    {
        var key = await _stack.DemoKeyAsync();
        using var resp = await Eventually.ReturnsAsync(async () =>
        {
            var r = await _http.SendAsync(Chat(key, stream: true), HttpCompletionOption.ResponseHeadersRead);
            if (r.StatusCode == HttpStatusCode.OK) return r;
            r.Dispose();
            return null;
        }, "a streamed response");
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        var text = await resp.Content.ReadAsStringAsync();
        Assert.Contains("data: [DONE]", text, StringComparison.Ordinal);
        // The client did not ask for usage, so the usage chunk the proxy forced upstream is not forwarded.
        Assert.DoesNotContain("\"prompt_tokens\"", text, StringComparison.Ordinal);
        var requestId = resp.Headers.GetValues("x-request-id").Single();
        var row = await Eventually.ReturnsAsync(async () =>
        {
            await using var db = Db();
            return await db.UsageLog.SingleOrDefaultAsync(u => u.RequestId == requestId);
        }, "the streamed usage row", TimeSpan.FromSeconds(5));
        Assert.True(row.Streamed);
        Assert.True(row.OutputTokens > 0);
        Assert.True(row.Cost > 0);
    }

    [Fact]
    public async Task Wrong_or_missing_key_gets_401_in_OpenAI_error_shape()
    {
        // Until the operator's first pass has built the projection, no key can be judged (503, retry): wait for it.
        await _stack.DemoKeyAsync();
        await Eventually.TrueAsync(async () => await _stack.ProjectionBuiltAsync(), "the operator to build the projection");
        // A well-formed key that was never issued, and no key at all.
        foreach (var auth in new[] { "Bearer " + Gateway.Core.Keys.ApiKeyFormat.Generate(), null })
        {
            var req = new HttpRequestMessage(HttpMethod.Get, "v1/models");
            if (auth is not null) req.Headers.TryAddWithoutValidation("Authorization", auth);
            using var r = await _http.SendAsync(req);
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            var error = doc.RootElement.GetProperty("error");
            Assert.Equal("invalid_api_key", error.GetProperty("code").GetString());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
            Assert.False(string.IsNullOrEmpty(error.GetProperty("type").GetString()));
        }
    }

    [Fact]
    public async Task Editing_the_samples_takes_effect_without_a_restart()
    {
        var key = await _stack.DemoKeyAsync();
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.OK, "the key to work");

        // Suspend the user by editing the manifest: the proxy refuses within the deadline.
        var file = Path.Combine(_stack.SamplesDir, "userquota-demo.yaml");
        var original = await File.ReadAllTextAsync(file);
        await File.WriteAllTextAsync(file, original.Replace("  maxKeys: 5", "  maxKeys: 5\n  suspended: true", StringComparison.Ordinal));
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.Forbidden, "the suspension to take effect", TimeSpan.FromSeconds(30));

        // Undo it, then delete the key's manifest: the key is revoked.
        await File.WriteAllTextAsync(file, original);
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.OK, "the suspension to be lifted", TimeSpan.FromSeconds(30));
        File.Delete(Path.Combine(_stack.SamplesDir, "apikey-demo.yaml"));
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.Unauthorized, "the key to be revoked", TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_lost_projection_is_rebuilt_from_PostgreSQL_and_the_sources()
    {
        var key = await _stack.DemoKeyAsync();
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.OK, "the key to work");

        // Simulate a Redis restart without persistence: every key of this stack's projection is gone.
        await using (var redis = await Gateway.Core.Redis.RespClient.ConnectAsync(TestEnvironment.Redis))
        {
            var cursor = "0";
            do
            {
                var page = await redis.ExecuteAsync("SCAN", [cursor, "MATCH", _stack.RedisPrefix + "*", "COUNT", 1000]);
                cursor = page.Items[0].AsString()!;
                foreach (var k in page.Items[1].Items) await redis.ExecuteAsync("DEL", [k.AsString()!]);
            }
            while (cursor != "0");
            await redis.ExecuteAsync("PUBLISH", [_stack.RedisPrefix + "invalidate", "all"]);
        }

        // The operator notices the missing epoch and rebuilds; the same key works again.
        await Eventually.TrueAsync(async () => (await _http.SendAsync(Chat(key))).StatusCode == HttpStatusCode.OK, "the projection to be rebuilt", TimeSpan.FromSeconds(60));
    }
}
