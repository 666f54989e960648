using System.ComponentModel;

namespace Gateway.Core.Resources;

/// <summary>An API key owned by a UserQuota.</summary>
[Description("ApiKey is a TokenGate API key owned by a UserQuota; the operator issues it into a Secret.")]
public sealed class ApiKey : CustomResource<ApiKeySpec, ApiKeyStatus>
{
    public ApiKey() => Kind = "ApiKey";

    /// <summary>Name of the Secret the key is issued into.</summary>
    public string EffectiveSecretName => string.IsNullOrEmpty(Spec.SecretName) ? Metadata.Name + "-apikey" : Spec.SecretName;
}

public sealed class ApiKeySpec
{
    [Description("Name of the owning UserQuota in the same namespace.")]
    public string Owner { get; set; } = "";
    [Description("What the key is for.")]
    public string? Description { get; set; }
    [Description("Model name globs this key may call; narrows the owner's list; empty means the owner's.")]
    public List<string> AllowedModels { get; set; } = [];
    [Description("Limits for this key.")]
    public KeyLimits? Limits { get; set; }
    [Description("Discount applied to this key's costs, as the fraction paid: 0 < rate <= 1.")]
    public decimal? DiscountRate { get; set; }
    [Description("When the key stops working.")]
    public DateTimeOffset? ExpiresAt { get; set; }
    [Description("When true, the key is rejected.")]
    public bool Disabled { get; set; }
    [Description("Secret the key is issued into; defaults to <name>-apikey.")]
    public string? SecretName { get; set; }
    [Description("Rotation settings.")]
    public KeyRotation? Rotation { get; set; }
}

public sealed class KeyLimits : RateLimits
{
    [Description("Lifetime token limit.")]
    public long? TokenLimit { get; set; }
    [Description("Lifetime spend limit in USD.")]
    public decimal? SpendLimit { get; set; }
}

public sealed class KeyRotation
{
    [Description("How long the previous key version stays valid after a rotation (Go duration, default 24h).")]
    public string? GracePeriod { get; set; }
    [Description("Rotate automatically at this interval (Go duration), when set.")]
    public string? Interval { get; set; }
}

public sealed class ApiKeyStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Conditions; Ready summarises them.")]
    public List<Condition> Conditions { get; set; } = [];
    [Description("Display prefix of the current key.")]
    public string? KeyPrefix { get; set; }
    [Description("Current key version.")]
    public int? CurrentVersion { get; set; }
    [Description("When the previous key version stops working.")]
    public DateTimeOffset? PreviousVersionExpiresAt { get; set; }
    [Description("When the key was last used.")]
    public DateTimeOffset? LastUsedAt { get; set; }
    [Description("Requests served with this key.")]
    public long? Requests { get; set; }
    [Description("Tokens used with this key.")]
    public long? Tokens { get; set; }
    [Description("Spend with this key in USD.")]
    public decimal? Spend { get; set; }
}
