using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Core.Redis;
using Gateway.EndToEnd.OAuth;
using Gateway.Testing;

namespace Gateway.EndToEnd.Security;

/// <summary>
/// Issue #12, item 5: the whole key and credential flow at Debug log level — a key issued and rotated, requests with
/// both keys and with a wrong one, an OAuth subscription account whose access token is refreshed several times under
/// traffic next to an API-key account — then every log line, both /metrics outputs, every Redis value under the
/// stack's prefix and every PostgreSQL row are searched for the keys, the pepper and every upstream credential ever
/// issued. DESIGN allows them only in the Secrets (here the file source's state files, which are not searched).
/// The portal's secrets (password, TOTP secret, recovery codes, invite token, cookies) are searched for the same way
/// by the browser journey (PortalJourneyTests).
/// </summary>
public sealed class SecretsStaySecretTests
{
    [Fact]
    public async Task No_key_pepper_or_upstream_credential_appears_in_logs_metrics_Redis_or_PostgreSQL()
    {
        await using var stack = await OAuthStack.StartWithDebugLogsAsync(accessTokenLifetimeSeconds: 4);
        await stack.AddOAuthAccountAsync("sub", refreshBefore: "2s", priority: 0);
        await stack.AddPlainAccountAsync("plain", priority: 1);
        var firstKey = await stack.KeyAsync();
        using var http = new HttpClient { BaseAddress = stack.ProxyUrl };
        var start = await stack.OAuthMock.GetOAuthStatsAsync("sub");

        // Traffic until the OAuth account's token was refreshed twice; the answers themselves are not the point here.
        var statuses = new ConcurrentBag<HttpStatusCode>();
        using (var stop = new CancellationTokenSource())
        {
            var traffic = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    using var r = await http.SendAsync(OAuthStack.Chat(firstKey));
                    statuses.Add(r.StatusCode);
                }
            });
            try
            {
                await Eventually.TrueAsync(async () => (await stack.OAuthMock.GetOAuthStatsAsync("sub")).Refreshes >= start.Refreshes + 2,
                    "two refreshes under traffic", TimeSpan.FromSeconds(120));
            }
            finally
            {
                await stop.CancelAsync();
                await traffic;
            }
        }
        Assert.Contains(HttpStatusCode.OK, statuses);

        // A wrong key (well-formed, unknown) is a client's secret too.
        var wrongKey = "tg-" + new string('W', 43);
        using (var wrong = await http.SendAsync(OAuthStack.Chat(wrongKey)))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);

        // Rotate (the annotation, as kubectl annotate would) and use the new key.
        var manifest = Path.Combine(stack.SamplesDir, "user.yaml");
        await File.WriteAllTextAsync(manifest, (await File.ReadAllTextAsync(manifest)).Replace(
            "metadata: { name: oauth-key, namespace: default }",
            "metadata: { name: oauth-key, namespace: default, annotations: { tokengate.io/rotate: \"secrets-scan\" } }", StringComparison.Ordinal));
        var secondKey = await Eventually.ReturnsAsync(async () => await stack.KeyAsync() is var k && k != firstKey ? k : null, "the rotated key");
        await Eventually.TrueAsync(async () =>
        {
            using var r = await http.SendAsync(OAuthStack.Chat(secondKey));
            return r.StatusCode == HttpStatusCode.OK;
        }, "the proxy to accept the rotated key");

        // What to look for: both keys, the wrong key, the pepper, the API-key account's key and every OAuth token issued.
        var secrets = new Dictionary<string, string>
        {
            ["first issued key"] = firstKey,
            ["rotated key"] = secondKey,
            ["wrong key from a client"] = wrongKey,
            ["pepper"] = stack.Pepper,
            ["upstream API key"] = stack.PlainMock.ApiKey,
        };
        var tokens = await stack.OAuthMock.GetIssuedTokensAsync("sub");
        Assert.True(tokens.Count >= 6, $"expected the sign-in pair and two refreshed pairs, got {tokens.Count} tokens");
        for (var i = 0; i < tokens.Count; i++) secrets[$"OAuth token #{i} ({tokens[i][..8]}…)"] = tokens[i];
        var scan = new SecretScan(secrets);

        // Logs at Debug: the scan must have seen Debug lines of both hosts, or an empty capture could pass.
        foreach (var log in stack.Logs)
        {
            var lines = log.Lines.ToList();
            Assert.Contains(lines, l => l.StartsWith("Debug ", StringComparison.Ordinal));
            scan.Texts(log.Component + " log", lines);
        }
        using var plain = new HttpClient();
        var proxyMetrics = await plain.GetStringAsync(new Uri(stack.ProxyManagementUrl, "metrics"));
        var operatorMetrics = await plain.GetStringAsync(new Uri(stack.OperatorUrl, "metrics"));
        Assert.Contains("tokengate_", proxyMetrics, StringComparison.Ordinal);
        Assert.Contains("tokengate_", operatorMetrics, StringComparison.Ordinal);
        scan.Texts("proxy /metrics", [proxyMetrics]);
        scan.Texts("operator /metrics", [operatorMetrics]);
        await using (var redis = await RespClient.ConnectAsync(TestEnvironment.Redis))
            Assert.True(await scan.RedisAsync(redis, stack.RedisPrefix) > 10, "the Redis scan found the projection");
        Assert.True(await scan.PostgresAsync(stack.Database.ConnectionString) > 10, "the PostgreSQL scan found the usage rows");

        Assert.True(scan.Findings.Count == 0,
            "secrets found in plaintext:\n" + string.Join("\n", scan.Findings.Select(f => $"{f.Secret} in {f.Where}")));
    }
}
