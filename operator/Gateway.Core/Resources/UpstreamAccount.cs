using System.ComponentModel;

namespace Gateway.Core.Resources;

/// <summary>A provider account the proxy forwards requests to.</summary>
[Description("UpstreamAccount is an LLM provider account (API key or OAuth subscription) that the proxy forwards requests to.")]
public sealed class UpstreamAccount : CustomResource<UpstreamAccountSpec, UpstreamAccountStatus>
{
    public UpstreamAccount() => Kind = "UpstreamAccount";
}

/// <summary>Provider names accepted in <see cref="UpstreamAccountSpec.Provider"/>.</summary>
public static class Providers
{
    public const string OpenAI = "openai";
    public const string Anthropic = "anthropic";
    public const string AzureOpenAI = "azure-openai";
    public const string OpenAICompatible = "openai-compatible";
    public const string GeminiOpenAI = "gemini-openai";
    public static readonly string[] All = [OpenAI, Anthropic, AzureOpenAI, OpenAICompatible, GeminiOpenAI];
}

public sealed class UpstreamAccountSpec
{
    [Description("Provider API dialect: openai, anthropic, azure-openai, openai-compatible or gemini-openai.")]
    public string Provider { get; set; } = "";
    [Description("Base URL of the provider API, e.g. https://api.openai.com/v1.")]
    public string BaseUrl { get; set; } = "";
    [Description("How the proxy authenticates to the provider: an API key in a Secret, or OAuth tokens in a Secret.")]
    public UpstreamCredentials Credentials { get; set; } = new();
    [Description("Models this account serves.")]
    public List<UpstreamModel> Models { get; set; } = [];
    [Description("Priority tier; lower tiers are tried first.")]
    public int Priority { get; set; }
    [Description("Relative weight for the weighted choice inside a priority tier.")]
    public int Weight { get; set; } = 1;
    [Description("Limits this account must stay under.")]
    public UpstreamLimits? Limits { get; set; }
    [Description("When true, the account receives no traffic.")]
    public bool Disabled { get; set; }
}

public sealed class UpstreamCredentials
{
    [Description("Secret key holding the provider API key.")]
    public SecretKeySelector? ApiKeySecretRef { get; set; }
    [Description("OAuth subscription credentials, refreshed by the operator.")]
    public OAuthCredentials? Oauth { get; set; }
}

public sealed class OAuthCredentials
{
    [Description("Secret holding the access token, refresh token and expiry in the CLIProxyAPI / Codex auth JSON format.")]
    public SecretReference SecretRef { get; set; } = new();
    [Description("OAuth token endpoint used to refresh the access token.")]
    public string TokenUrl { get; set; } = "";
    [Description("OAuth client id used for refresh.")]
    public string ClientId { get; set; } = "";
}

public sealed class UpstreamModel
{
    [Description("Model name clients ask for.")]
    public string Name { get; set; } = "";
    [Description("Model name sent upstream, when it differs (for Azure OpenAI: the deployment name).")]
    public string? UpstreamName { get; set; }
    [Description("Price override in USD per 1M tokens; defaults to the price table in config/prices.")]
    public ModelPrice? Price { get; set; }
}

/// <summary>USD per 1M tokens by kind.</summary>
public sealed class ModelPrice
{
    [Description("USD per 1M input tokens.")]
    public decimal Input { get; set; }
    [Description("USD per 1M cached input tokens.")]
    public decimal? CachedInput { get; set; }
    [Description("USD per 1M cache-write tokens.")]
    public decimal? CacheWrite { get; set; }
    [Description("USD per 1M output tokens.")]
    public decimal Output { get; set; }
}

public sealed class UpstreamLimits
{
    [Description("Maximum requests per minute sent to this account.")]
    public int? RequestsPerMinute { get; set; }
    [Description("Maximum tokens per minute sent to this account.")]
    public long? TokensPerMinute { get; set; }
    [Description("Maximum concurrent requests in flight to this account.")]
    public int? MaxConcurrent { get; set; }
}

public sealed class UpstreamAccountStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Ready, CredentialsValid and Healthy conditions.")]
    public List<Condition> Conditions { get; set; } = [];
    [Description("When the current OAuth access token expires.")]
    public DateTimeOffset? TokenExpiresAt { get; set; }
    [Description("When the OAuth token was last refreshed.")]
    public DateTimeOffset? LastRefreshAt { get; set; }
    [Description("Until when the account is cooling down after repeated failures.")]
    public DateTimeOffset? CooldownUntil { get; set; }
    [Description("Last error seen for this account.")]
    public string? LastError { get; set; }
}
