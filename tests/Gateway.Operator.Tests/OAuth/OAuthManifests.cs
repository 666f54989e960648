using System.Globalization;
using System.Text.Json.Nodes;
using Gateway.MockUpstream;
using Gateway.MockUpstream.OAuth;

namespace Gateway.Operator.Tests.OAuth;

/// <summary>Manifests of an OAuth UpstreamAccount and its Secret (CLIProxyAPI / Codex auth JSON) pointing at the mock.</summary>
internal static class OAuthManifests
{
    public const string ClientId = "tokengate-test-client";

    public static string AuthJson(IssuedTokens t, DateTimeOffset now) => new JsonObject
    {
        ["type"] = "codex",
        ["email"] = t.Account + "@example.com",
        ["account_id"] = t.Account,
        ["access_token"] = t.AccessToken,
        ["refresh_token"] = t.RefreshToken,
        ["expired"] = now.AddSeconds(t.ExpiresInSeconds).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
    }.ToJsonString();

    public static string Secret(string name, string authJson) => $"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: {name}
          namespace: default
        type: Opaque
        stringData:
          auth.json: '{authJson}'
        """;

    public static string Account(string name, string secretName, MockUpstreamServer mock, string refreshBefore, int priority = 0) => $"""
        apiVersion: tokengate.io/v1alpha1
        kind: UpstreamAccount
        metadata:
          name: {name}
          namespace: default
        spec:
          provider: openai-compatible
          baseUrl: {mock.OpenAIBaseUrl}
          credentials:
            oauth:
              secretRef: {"{"} name: {secretName} {"}"}
              tokenUrl: {mock.TokenUrl}
              clientId: {ClientId}
              refreshBefore: {refreshBefore}
          models:
            - name: gpt-4o-mini
          priority: {priority}
        """;

    /// <summary>The mock started with OAuth on: short-lived access tokens, a registered client id, tokens required on API routes.</summary>
    public static Task<MockUpstreamServer> StartMockAsync(double accessTokenLifetimeSeconds) => MockUpstreamServer.StartAsync(
    [
        new("Mock:OAuth:RequireAccessToken", "true"),
        new("Mock:OAuth:AccessTokenLifetimeSeconds", accessTokenLifetimeSeconds.ToString(CultureInfo.InvariantCulture)),
        new("Mock:OAuth:ClientId", ClientId),
    ]);
}
