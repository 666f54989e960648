using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

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

[CelRule("!has(self.provider) || self.provider != 'azure-openai' || !has(self.models) || self.models.all(m, has(m.upstreamName))",
    Message = "azure-openai models need upstreamName: the Azure deployment that serves the model", FieldPath = ".models")]
public sealed class UpstreamAccountSpec
{
    [Description("Provider API dialect: openai, anthropic, azure-openai, openai-compatible or gemini-openai.")]
    [Required, MaxLength(32), AllowedValues(Providers.OpenAI, Providers.Anthropic, Providers.AzureOpenAI, Providers.OpenAICompatible, Providers.GeminiOpenAI)]
    public string Provider { get; set; } = "";
    [Description("Base URL of the provider API, e.g. https://api.openai.com/v1.")]
    [Required, MaxLength(2048), RegularExpression(SchemaPatterns.HttpUrl)]
    public string BaseUrl { get; set; } = "";
    [Description("How the proxy authenticates to the provider: an API key in a Secret, or OAuth tokens in a Secret.")]
    [Required]
    public UpstreamCredentials Credentials { get; set; } = new();
    [Description("Models this account serves.")]
    [Required, MinLength(1), MaxLength(500), ListMapKeys("name")]
    public List<UpstreamModel> Models { get; set; } = [];
    [Description("Priority tier; lower tiers are tried first.")]
    [Range(0, double.PositiveInfinity), DefaultValue(0)]
    public int Priority { get; set; }
    [Description("Relative weight for the weighted choice inside a priority tier.")]
    [Range(1, double.PositiveInfinity), DefaultValue(1)]
    public int Weight { get; set; } = 1;
    [Description("Limits this account must stay under.")]
    public UpstreamLimits? Limits { get; set; }
    [Description("When true, the account receives no traffic.")]
    [DefaultValue(false)]
    public bool Disabled { get; set; }
    [Description("Extra request headers sent to this account with every request, replacing a client header of the same name (e.g. an account-id header an OAuth subscription backend needs). Credentials, Host and framing headers are the proxy's and cannot be set here.")]
    public Dictionary<string, string>? Headers { get; set; }
    [Description("Per-route path overrides: the upstream path (after baseUrl) by the route's usual path, one of /chat/completions, /completions, /embeddings, /responses, /messages, /messages/count_tokens. E.g. {\"/responses\": \"/codex/responses\"}. Not for azure-openai, whose URLs follow the deployment.")]
    public Dictionary<string, string>? Paths { get; set; }
    [Description("The plan's own usage windows (a subscription's 5-hour, daily or weekly allowance). The proxies count every account's requests and tokens in rolling windows; an account at a window's limit gets no traffic until the window frees up, and inside a priority tier accounts with more headroom get proportionally more requests.")]
    [MaxLength(3), ListMapKeys("period")]
    public List<UpstreamWindow>? Windows { get; set; }
}

/// <summary>Window periods accepted in <see cref="UpstreamWindow.Period"/>.</summary>
public static class WindowPeriods
{
    public const string FiveHours = "5h";
    public const string OneDay = "1d";
    public const string SevenDays = "7d";
}

[CelRule("has(self.requests) || has(self.tokens)", Message = "a window needs requests, tokens or both")]
public sealed class UpstreamWindow
{
    [Description("Length of the rolling window: 5h, 1d or 7d.")]
    [Required, AllowedValues(WindowPeriods.FiveHours, WindowPeriods.OneDay, WindowPeriods.SevenDays)]
    public string Period { get; set; } = "";
    [Description("Requests the plan allows in the window.")]
    [Range(1, double.PositiveInfinity)]
    public long? Requests { get; set; }
    [Description("Tokens (input + output) the plan allows in the window.")]
    [Range(1, double.PositiveInfinity)]
    public long? Tokens { get; set; }
}

[CelRule("has(self.apiKeySecretRef) != has(self.oauth)", Message = "set exactly one of apiKeySecretRef or oauth")]
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
    [Required]
    public SecretReference SecretRef { get; set; } = new();
    [Description("OAuth token endpoint used to refresh the access token.")]
    [Required, MaxLength(2048), RegularExpression(SchemaPatterns.HttpUrl)]
    public string TokenUrl { get; set; } = "";
    [Description("OAuth client id used for refresh.")]
    [Required, MinLength(1)]
    public string ClientId { get; set; } = "";
    [Description("How long before the access token expires the operator refreshes it (Go duration, default 5m).")]
    [RegularExpression(SchemaPatterns.Duration), DefaultValue("5m")]
    public string? RefreshBefore { get; set; }
}

public sealed class UpstreamModel
{
    [Description("Model name clients ask for.")]
    [Required, MinLength(1), MaxLength(256)]
    public string Name { get; set; } = "";
    [Description("Model name sent upstream, when it differs (for Azure OpenAI: the deployment name).")]
    [MinLength(1), MaxLength(256)]
    public string? UpstreamName { get; set; }
    [Description("Price override in USD per 1M tokens; defaults to the price table in config/prices.")]
    public ModelPrice? Price { get; set; }
}

/// <summary>USD per 1M tokens by kind.</summary>
public sealed class ModelPrice
{
    [Description("USD per 1M input tokens.")]
    [Required, Range(0, double.PositiveInfinity)]
    public decimal Input { get; set; }
    [Description("USD per 1M cached input tokens.")]
    [Range(0, double.PositiveInfinity)]
    public decimal? CachedInput { get; set; }
    [Description("USD per 1M cache-write tokens.")]
    [Range(0, double.PositiveInfinity)]
    public decimal? CacheWrite { get; set; }
    [Description("USD per 1M output tokens.")]
    [Required, Range(0, double.PositiveInfinity)]
    public decimal Output { get; set; }
}

public sealed class UpstreamLimits
{
    [Description("Maximum requests per minute sent to this account.")]
    [Range(1, double.PositiveInfinity)]
    public int? RequestsPerMinute { get; set; }
    [Description("Maximum tokens per minute sent to this account.")]
    [Range(1, double.PositiveInfinity)]
    public long? TokensPerMinute { get; set; }
    [Description("Maximum concurrent requests in flight to this account.")]
    [Range(1, double.PositiveInfinity)]
    public int? MaxConcurrent { get; set; }
}

public sealed class UpstreamAccountStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Ready, CredentialsValid and Healthy conditions.")]
    [ListMapKeys("type")]
    public List<Condition> Conditions { get; set; } = [];
    [Description("When the current OAuth access token expires.")]
    public DateTimeOffset? TokenExpiresAt { get; set; }
    [Description("When the OAuth token was last refreshed.")]
    public DateTimeOffset? LastRefreshAt { get; set; }
    [Description("Until when the account is cooling down after repeated failures.")]
    public DateTimeOffset? CooldownUntil { get; set; }
    [Description("Last error seen for this account.")]
    public string? LastError { get; set; }
    [Description("Requests sent to this account in the last 24 hours (rolling), by every proxy replica.")]
    public long? RequestsToday { get; set; }
    [Description("Requests and tokens in each rolling window (5h, 1d, 7d) and, for the windows in spec.windows, the headroom left.")]
    [ListMapKeys("period")]
    public List<UpstreamWindowStatus>? Windows { get; set; }
}

public sealed class UpstreamWindowStatus
{
    [Description("Length of the rolling window: 5h, 1d or 7d.")]
    [Required]
    public string Period { get; set; } = "";
    [Description("Requests in the window.")]
    public long Requests { get; set; }
    [Description("Tokens in the window.")]
    public long Tokens { get; set; }
    [Description("The window's request limit from spec.windows.")]
    public long? RequestsLimit { get; set; }
    [Description("The window's token limit from spec.windows.")]
    public long? TokensLimit { get; set; }
    [Description("Share of the window's limits still free, from 0 (exhausted) to 1 (unused): the smaller of the request and token shares. Absent without a limit.")]
    public double? Headroom { get; set; }
}
