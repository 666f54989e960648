using Gateway.Core.Projection;
using Gateway.Core.Resources;
using Gateway.Proxy.Forwarding;
using Gateway.Proxy.Requests;
using Gateway.Proxy.Routing;

namespace Gateway.Proxy.Tests.Forwarding;

public sealed class ProviderAdapterTests
{
    private static UpstreamTarget Target(string provider, string baseUrl, string credential, string upstreamModel = "m")
    {
        var q = baseUrl.IndexOf('?', StringComparison.Ordinal);
        return new UpstreamTarget
        {
            Account = new UpstreamProjection { Name = "a", Provider = provider, BaseUrl = baseUrl, Credential = credential },
            Model = new UpstreamModel { Name = "m", UpstreamName = upstreamModel },
            Health = new UpstreamHealth("a"),
            UpstreamModelName = upstreamModel,
            BaseUrl = (q < 0 ? baseUrl : baseUrl[..q]).TrimEnd('/'),
            BaseQuery = q < 0 ? "" : baseUrl[(q + 1)..],
            BearerAuthorization = "Bearer " + credential,
        };
    }

    [Theory]
    [InlineData(Providers.OpenAI, "https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions")]
    [InlineData(Providers.OpenAICompatible, "http://127.0.0.1:8089/v1/", "http://127.0.0.1:8089/v1/chat/completions")]
    [InlineData(Providers.GeminiOpenAI, "https://generativelanguage.googleapis.com/v1beta/openai", "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions")]
    [InlineData(Providers.AzureOpenAI, "https://res.openai.azure.com", "https://res.openai.azure.com/openai/deployments/dep%201/chat/completions?api-version=2024-10-21")]
    [InlineData(Providers.AzureOpenAI, "https://res.openai.azure.com/openai?api-version=2025-01-01", "https://res.openai.azure.com/openai/deployments/dep%201/chat/completions?api-version=2025-01-01")]
    public void Builds_the_upstream_url_per_provider(string provider, string baseUrl, string expected)
    {
        Assert.Equal(expected, ProviderAdapter.BuildUri(Target(provider, baseUrl, "c", "dep 1"), ProxyRoute.ChatCompletions, "2024-10-21").AbsoluteUri);
    }

    [Theory]
    [InlineData(Providers.OpenAI, "chat", "Authorization", "Bearer secret")]
    [InlineData(Providers.GeminiOpenAI, "chat", "Authorization", "Bearer secret")]
    [InlineData(Providers.AzureOpenAI, "chat", "api-key", "secret")]
    [InlineData(Providers.Anthropic, "messages", "x-api-key", "secret")]
    [InlineData(Providers.OpenAICompatible, "messages", "x-api-key", "secret")]
    public void Sends_the_credential_in_the_providers_style(string provider, string route, string header, string value)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1/");
        ProviderAdapter.ApplyCredential(request, Target(provider, "http://127.0.0.1/v1", "secret"), route == "chat" ? ProxyRoute.ChatCompletions : ProxyRoute.Messages, "2023-06-01");
        Assert.Equal(value, request.Headers.GetValues(header).Single());
        if (route == "messages") Assert.Equal("2023-06-01", request.Headers.GetValues("anthropic-version").Single());
    }

    [Fact]
    public void Anthropic_oauth_token_is_sent_as_bearer_with_the_oauth_beta()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1/");
        ProviderAdapter.ApplyCredential(request, Target(Providers.Anthropic, "http://127.0.0.1/v1", "sk-ant-oat01-abc"), ProxyRoute.Messages, "2023-06-01");
        Assert.Equal("Bearer sk-ant-oat01-abc", request.Headers.GetValues("Authorization").Single());
        Assert.Equal("oauth-2025-04-20", request.Headers.GetValues("anthropic-beta").Single());
        Assert.False(request.Headers.Contains("x-api-key"));
    }

    [Fact]
    public void Client_anthropic_version_is_kept()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1/");
        request.Headers.TryAddWithoutValidation("anthropic-version", "2099-01-01");
        ProviderAdapter.ApplyCredential(request, Target(Providers.Anthropic, "http://127.0.0.1/v1", "k"), ProxyRoute.Messages, "2023-06-01");
        Assert.Equal("2099-01-01", request.Headers.GetValues("anthropic-version").Single());
    }

    [Theory]
    [InlineData("Connection", true)]
    [InlineData("Authorization", true)]
    [InlineData("x-api-key", true)]
    [InlineData("Accept-Encoding", true)]
    [InlineData("x-tokengate-debug", true)]
    [InlineData("anthropic-beta", false)]
    [InlineData("OpenAI-Organization", false)]
    public void Request_header_rules(string name, bool skipped) => Assert.Equal(skipped, HeaderRules.SkipRequestHeader(name));
}
