using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Core.Json;
using Gateway.Core.Projection;
using Gateway.Core.Redis;
using Gateway.Testing;

namespace Gateway.EndToEnd;

/// <summary>
/// Issue 10's acceptance point "a Redis dump after `make run` contains no upstream credential in plaintext": the
/// stack as `make run` starts it (file source over the samples, a generated credential key folder shared by the
/// operator and the proxy), plus an OAuth subscription account, serves a request; then every key under the
/// stack's Redis prefix is read back by type and searched for the credentials.
/// </summary>
public sealed class CredentialsAtRestTests : IAsyncLifetime
{
    // The sample account's API key (config/samples/upstreamaccount-mock.yaml), which the mock requires.
    private const string SampleApiKey = "mock-upstream-key";
    private readonly string _accessToken = "oat-e2e-access-" + Guid.NewGuid().ToString("N");
    private readonly string _refreshToken = "ort-e2e-refresh-" + Guid.NewGuid().ToString("N");
    private GatewayStack _stack = null!;
    private RespClient _redis = null!;

    public async Task InitializeAsync()
    {
        _stack = await GatewayStack.StartAsync();
        _redis = await RespClient.ConnectAsync(TestEnvironment.Redis);
    }

    public async Task DisposeAsync()
    {
        await _redis.DisposeAsync();
        await _stack.DisposeAsync();
    }

    [Fact]
    public async Task A_Redis_dump_after_make_run_holds_no_upstream_credential_in_plaintext()
    {
        // A subscription account signed in with OAuth (CLIProxyAPI / Codex auth JSON), next to the sample API-key account.
        var authJson = JsonSerializer.Serialize(new
        {
            access_token = _accessToken,
            refresh_token = _refreshToken,
            id_token = "e2e-id-token",
            expired = "2099-01-01T00:00:00Z",
            account_id = "acct-e2e",
            email = "e2e@example.com",
            type = "codex",
        });
        await File.WriteAllTextAsync(Path.Combine(_stack.SamplesDir, "upstreamaccount-oauth.yaml"), $"""
            apiVersion: v1
            kind: Secret
            metadata:
              name: oauth-e2e-auth
              namespace: default
            type: Opaque
            stringData:
              auth.json: '{authJson}'
            ---
            apiVersion: tokengate.io/v1alpha1
            kind: UpstreamAccount
            metadata:
              name: subscription
              namespace: default
            spec:
              provider: openai-compatible
              baseUrl: {_stack.MockUrl}v1
              credentials:
                oauth:
                  secretRef:
                    name: oauth-e2e-auth
                  tokenUrl: {_stack.MockUrl}oauth/token
                  clientId: e2e-client
              models:
                - name: subscription-only
              priority: 5
            """);

        var upstreams = await Eventually.ReturnsAsync(async () =>
        {
            var json = (await _redis.ExecuteAsync("GET", [new ProjectionKeys(_stack.RedisPrefix).Upstreams])).AsString();
            var list = json is null ? null : JsonSerializer.Deserialize<List<UpstreamProjection>>(json, TokenGateJson.Options);
            return list is { Count: 2 } ? list : null;
        }, "both upstream accounts in the projection");
        Assert.All(upstreams, u =>
        {
            Assert.Null(u.Credential);
            Assert.StartsWith("v1:" + TestCredentialKeys.KeyId + ":", u.EncryptedCredential, StringComparison.Ordinal);
        });

        // The proxy decrypts in memory: the mock accepts only its own key, so a 200 proves the round trip.
        var key = await _stack.DemoKeyAsync();
        using var http = new HttpClient { BaseAddress = _stack.ProxyUrl };
        await Eventually.TrueAsync(async () =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
            {
                Content = new StringContent("""{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var response = await http.SendAsync(request);
            return response.StatusCode == HttpStatusCode.OK;
        }, "a request through the proxy to be served");
        // The request's usage has reached Redis (the stream) before the dump, so the dump covers every kind of key.
        var usageStreams = ProjectionKeys.Shards.Select(new ProjectionKeys(_stack.RedisPrefix).UsageStream).ToList();
        await Eventually.TrueAsync(async () => (await DumpAsync()).Keys.Any(usageStreams.Contains), "the usage stream in Redis");

        var dump = await DumpAsync();
        Assert.True(dump.Count >= 5, "the dump holds the projection: " + string.Join(", ", dump.Keys));
        var text = string.Join("\n", dump.Select(kv => kv.Key + "=" + kv.Value));
        foreach (var secret in new[] { SampleApiKey, _accessToken, _refreshToken })
        {
            Assert.DoesNotContain(secret, text, StringComparison.Ordinal);
            Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes(secret)), text, StringComparison.Ordinal);
        }
        // The pepper-hashed demo key and the sealed credentials are there; nothing readable is.
        Assert.Contains("\"encryptedCredential\":\"v1:", text, StringComparison.Ordinal);
    }

    /// <summary>Every key under the stack's prefix with its value, read by type (strings, hashes, lists, sets, sorted sets, streams).</summary>
    private async Task<Dictionary<string, string>> DumpAsync()
    {
        var dump = new Dictionary<string, string>(StringComparer.Ordinal);
        var cursor = "0";
        do
        {
            var reply = await _redis.ExecuteAsync("SCAN", [cursor, "MATCH", _stack.RedisPrefix + "*", "COUNT", 1000]);
            cursor = reply.Items[0].AsString()!;
            foreach (var item in reply.Items[1].Items)
            {
                var key = item.AsString()!;
                var type = (await _redis.ExecuteAsync("TYPE", [key])).AsString();
                var value = type switch
                {
                    "string" => await _redis.ExecuteAsync("GET", [key]),
                    "hash" => await _redis.ExecuteAsync("HGETALL", [key]),
                    "list" => await _redis.ExecuteAsync("LRANGE", [key, 0, -1]),
                    "set" => await _redis.ExecuteAsync("SMEMBERS", [key]),
                    "zset" => await _redis.ExecuteAsync("ZRANGE", [key, 0, -1, "WITHSCORES"]),
                    "stream" => await _redis.ExecuteAsync("XRANGE", [key, "-", "+"]),
                    _ => null, // "none": expired between SCAN and TYPE
                };
                if (value is not null) dump[key] = Flatten(value);
            }
        } while (cursor != "0");
        return dump;
    }

    private static string Flatten(RespValue value)
    {
        if (value.Type == RespType.Array) return "[" + string.Join(",", value.Items.Select(Flatten)) + "]";
        return value.AsString() ?? "";
    }
}
