using System.ComponentModel;
using System.ComponentModel.DataAnnotations;

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
    [Required, MaxLength(253), RegularExpression(SchemaPatterns.ObjectName)]
    public string Owner { get; set; } = "";
    [Description("What the key is for.")]
    public string? Description { get; set; }
    [Description("Model name globs this key may call; narrows the owner's list; empty means the owner's.")]
    public List<string> AllowedModels { get; set; } = [];
    [Description("Limits for this key.")]
    public KeyLimits? Limits { get; set; }
    [Description("Discount applied to this key's costs, as the fraction paid: 0 < rate <= 1.")]
    [Range(0, 1, MinimumIsExclusive = true)]
    public decimal? DiscountRate { get; set; }
    [Description("When the key stops working.")]
    public DateTimeOffset? ExpiresAt { get; set; }
    [Description("When true, the key is rejected.")]
    [DefaultValue(false)]
    public bool Disabled { get; set; }
    [Description("Secret the key is issued into; defaults to <name>-apikey.")]
    [MaxLength(253), RegularExpression(SchemaPatterns.ObjectName)]
    public string? SecretName { get; set; }
    [Description("Rotation settings.")]
    public KeyRotation? Rotation { get; set; }
}

public sealed class KeyLimits : RateLimits
{
    [Description("Lifetime token limit.")]
    [Range(1, double.PositiveInfinity)]
    public long? TokenLimit { get; set; }
    [Description("Lifetime spend limit in USD.")]
    [Range(0, double.PositiveInfinity)]
    public decimal? SpendLimit { get; set; }
}

public sealed class KeyRotation
{
    [Description("How long the previous key version stays valid after a rotation (Go duration, default 24h).")]
    [RegularExpression(SchemaPatterns.Duration), DefaultValue("24h")]
    public string? GracePeriod { get; set; }
    [Description("Rotate automatically at this interval (Go duration), when set.")]
    [RegularExpression(SchemaPatterns.Duration)]
    public string? Interval { get; set; }
}

public sealed class ApiKeyStatus
{
    [Description("The .metadata.generation last reconciled.")]
    public long? ObservedGeneration { get; set; }
    [Description("Conditions; Ready summarises them.")]
    [ListMapKeys("type")]
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
