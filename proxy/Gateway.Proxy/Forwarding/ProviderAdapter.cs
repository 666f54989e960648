using Gateway.Core.Resources;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;

namespace Gateway.Proxy.Forwarding;

/// <summary>
/// Provider dialects: where a route goes on an account and how the account's credential is sent.
/// openai, openai-compatible, gemini-openai: base URL + path, Bearer. anthropic: base URL + path,
/// x-api-key and anthropic-version. azure-openai: deployment URL with api-version, api-key.
/// </summary>
public static class ProviderAdapter
{
    /// <summary>Prefix of Anthropic OAuth (subscription) access tokens.</summary>
    public const string AnthropicOAuthTokenPrefix = "sk-ant-oat";
    public const string AnthropicOAuthBeta = "oauth-2025-04-20";

    /// <summary>The upstream URI for a route on a target.</summary>
    public static Uri BuildUri(UpstreamTarget target, ProxyRoute route, string azureApiVersion)
    {
        if (target.Account.Provider == Providers.AzureOpenAI)
        {
            var query = string.IsNullOrEmpty(target.BaseQuery) ? "api-version=" + Uri.EscapeDataString(azureApiVersion) : target.BaseQuery;
            var basePath = target.BaseUrl.EndsWith("/openai", StringComparison.OrdinalIgnoreCase) ? target.BaseUrl : target.BaseUrl + "/openai";
            if (route == ProxyRoute.Responses) return new Uri(basePath + "/responses?" + query);
            return new Uri(string.Concat(basePath, "/deployments/", Uri.EscapeDataString(target.UpstreamModelName), route.UpstreamPath, "?", query));
        }
        // spec.paths may move a route elsewhere on the account (validated by the operator).
        var path = target.Account.Paths is { } paths && paths.TryGetValue(route.UpstreamPath, out var custom) ? custom : route.UpstreamPath;
        return string.IsNullOrEmpty(target.BaseQuery)
            ? new Uri(target.BaseUrl + path)
            : new Uri(string.Concat(target.BaseUrl, path, "?", target.BaseQuery));
    }

    /// <summary>Sets the account's extra headers (spec.headers), replacing a client header of the same name.</summary>
    public static void ApplyAccountHeaders(HttpRequestMessage request, UpstreamTarget target)
    {
        if (target.Account.Headers is not { Count: > 0 } headers) return;
        foreach (var (name, value) in headers)
        {
            request.Headers.Remove(name);
            request.Headers.TryAddWithoutValidation(name, value);
        }
    }

    /// <summary>Sets the credential headers (the client's were not copied) in the provider's style.</summary>
    public static void ApplyCredential(HttpRequestMessage request, UpstreamTarget target, ProxyRoute route, string defaultAnthropicVersion)
    {
        var credential = target.Account.Credential;
        var provider = target.Account.Provider;
        if (provider == Providers.AzureOpenAI)
        {
            if (!string.IsNullOrEmpty(credential)) request.Headers.TryAddWithoutValidation("api-key", credential);
            return;
        }
        if (route.Dialect == ApiDialect.Anthropic)
        {
            if (provider == Providers.Anthropic && credential is not null && credential.StartsWith(AnthropicOAuthTokenPrefix, StringComparison.Ordinal))
            {
                // A Claude subscription's OAuth access token is a bearer token and needs the OAuth beta flag.
                request.Headers.TryAddWithoutValidation("Authorization", target.BearerAuthorization);
                request.Headers.TryAddWithoutValidation("anthropic-beta", AnthropicOAuthBeta);
            }
            else if (!string.IsNullOrEmpty(credential)) request.Headers.TryAddWithoutValidation("x-api-key", credential);
            if (!request.Headers.Contains("anthropic-version")) request.Headers.TryAddWithoutValidation("anthropic-version", defaultAnthropicVersion);
            return;
        }
        if (target.BearerAuthorization is not null) request.Headers.TryAddWithoutValidation("Authorization", target.BearerAuthorization);
    }
}
