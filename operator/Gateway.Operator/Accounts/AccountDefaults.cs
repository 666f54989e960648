using Gateway.Core.Resources;

namespace Gateway.Operator.Accounts;

/// <summary>What an UpstreamAccount needs besides the tokens: the provider dialect, where to send requests and refreshes, which models.</summary>
public sealed record AccountTarget(string Provider, string BaseUrl, string TokenUrl, string ClientId, IReadOnlyList<string> Models);

/// <summary>
/// Built-in targets per auth file <c>type</c>. The OAuth client ids are the public ids of the vendors' own CLIs
/// (the same ones CLIProxyAPI and the Codex CLI refresh with); every value can be overridden on the command line.
/// </summary>
public static class AccountDefaults
{
    public const string Codex = "codex";
    public const string Claude = "claude";

    private static readonly Dictionary<string, AccountTarget> Targets = new(StringComparer.Ordinal)
    {
        // ChatGPT subscription (Codex): the Responses API under chatgpt.com's backend; requests also need the
        // ChatGPT-Account-Id header, which the account's spec.headers carries once that field exists.
        [Codex] = new(Providers.OpenAI, "https://chatgpt.com/backend-api/codex", "https://auth.openai.com/oauth/token",
            "app_EMoamEEZ73f0CkXaXp7hrann", ["gpt-5", "gpt-5-codex"]),
        // Claude subscription (Claude Code sign-in).
        [Claude] = new(Providers.Anthropic, "https://api.anthropic.com/v1", "https://console.anthropic.com/v1/oauth/token",
            "9d1c250a-e61b-44d9-88ed-5944d1962f5e", ["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5"]),
    };

    /// <summary>Types with built-in defaults.</summary>
    public static IReadOnlyCollection<string> KnownTypes => Targets.Keys;

    public static AccountTarget? For(string type) => Targets.GetValueOrDefault(type);
}

/// <summary>How accounts are turned into manifests: namespace, overrides of the per-type defaults, selection fields.</summary>
public sealed record ImportSettings
{
    public string Namespace { get; init; } = "default";
    /// <summary>Type for files that do not name one (a flat file without "type").</summary>
    public string? DefaultType { get; init; }
    public string? Provider { get; init; }
    public string? BaseUrl { get; init; }
    public string? TokenUrl { get; init; }
    public string? ClientId { get; init; }
    public IReadOnlyList<string>? Models { get; init; }
    public int? Priority { get; init; }
    public int? Weight { get; init; }
    public IReadOnlyDictionary<string, string> Labels { get; init; } = new Dictionary<string, string>();

    /// <summary>The defaults of <paramref name="type"/> with the overrides applied; null names what is still missing.</summary>
    public (AccountTarget? Target, string? Problem) Resolve(string type)
    {
        var d = AccountDefaults.For(type);
        var provider = Provider ?? d?.Provider;
        var baseUrl = BaseUrl ?? d?.BaseUrl;
        var tokenUrl = TokenUrl ?? d?.TokenUrl;
        var clientId = ClientId ?? d?.ClientId;
        var models = Models ?? d?.Models;
        if (provider is null || baseUrl is null || tokenUrl is null || clientId is null || models is null || models.Count == 0)
        {
            var missing = new List<string>();
            if (provider is null) missing.Add("--provider");
            if (baseUrl is null) missing.Add("--base-url");
            if (tokenUrl is null) missing.Add("--token-url");
            if (clientId is null) missing.Add("--client-id");
            if (models is null || models.Count == 0) missing.Add("--models");
            return (null, $"type '{type}' has no built-in defaults (known: {string.Join(", ", AccountDefaults.KnownTypes)}): pass {string.Join(", ", missing)}.");
        }
        return (new AccountTarget(provider, baseUrl, tokenUrl, clientId, models), null);
    }
}
