using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace Gateway.Core.Resources;

/// <summary>The API group and version of every TokenGate resource.</summary>
public static class TokenGateApi
{
    public const string Group = "tokengate.io";
    public const string Version = "v1alpha1";
    public const string ApiVersion = Group + "/" + Version;
    public const string Category = "tokengate";
    public const string Finalizer = "tokengate.io/finalizer";
    public const string RotateAnnotation = "tokengate.io/rotate";
    /// <summary>On an OAuth UpstreamAccount: a new value asks the operator to refresh the access token now.</summary>
    public const string RefreshAnnotation = "tokengate.io/refresh";
}

/// <summary>Standard object metadata (the subset TokenGate reads and writes).</summary>
public sealed class ObjectMeta
{
    public string Name { get; set; } = "";
    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public long? Generation { get; set; }
    public DateTimeOffset? CreationTimestamp { get; set; }
    public DateTimeOffset? DeletionTimestamp { get; set; }
    public Dictionary<string, string>? Labels { get; set; }
    public Dictionary<string, string>? Annotations { get; set; }
    public List<string>? Finalizers { get; set; }
    public List<OwnerReference>? OwnerReferences { get; set; }
}

/// <summary>metav1.OwnerReference.</summary>
public sealed class OwnerReference
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Name { get; set; } = "";
    public string Uid { get; set; } = "";
    public bool? Controller { get; set; }
    public bool? BlockOwnerDeletion { get; set; }
}

/// <summary>metav1.Condition.</summary>
public sealed class Condition
{
    [Description("Type of condition in CamelCase, e.g. Ready.")]
    [Required, MinLength(1), MaxLength(316)]
    public string Type { get; set; } = "";
    [Description("Status of the condition: True, False or Unknown.")]
    [Required, AllowedValues("True", "False", "Unknown")]
    public string Status { get; set; } = "Unknown";
    [Description("The .metadata.generation the condition was set from.")]
    [Range(0, double.PositiveInfinity)]
    public long? ObservedGeneration { get; set; }
    [Description("Last time the condition changed from one status to another.")]
    [Required]
    public DateTimeOffset LastTransitionTime { get; set; }
    [Description("Programmatic identifier of the reason for the last transition, in CamelCase.")]
    [Required, MaxLength(1024)]
    public string Reason { get; set; } = "";
    [Description("Human-readable message with details about the transition.")]
    [Required, MaxLength(32768)]
    public string Message { get; set; } = "";
}

/// <summary>Any object with metadata (lets generic code reach metadata without knowing the spec type).</summary>
public interface IResource
{
    string Kind { get; }
    ObjectMeta Metadata { get; }
}

/// <summary>A namespaced custom resource with spec and status.</summary>
public abstract class CustomResource<TSpec, TStatus> : IResource
    where TSpec : new()
    where TStatus : new()
{
    public string ApiVersion { get; set; } = TokenGateApi.ApiVersion;
    public string Kind { get; set; } = "";
    public ObjectMeta Metadata { get; set; } = new();
    public TSpec Spec { get; set; } = new();
    public TStatus? Status { get; set; }

    /// <summary>"namespace/name", the identity used in PostgreSQL, Redis and logs.</summary>
    [JsonIgnore]
    public string Key => $"{Metadata.Namespace ?? "default"}/{Metadata.Name}";
}

/// <summary>Reference to one key of a Secret in the same namespace.</summary>
public sealed class SecretKeySelector
{
    [Description("Name of the Secret in the same namespace.")]
    [Required, MaxLength(253), RegularExpression(SchemaPatterns.ObjectName)]
    public string Name { get; set; } = "";
    [Description("Key within the Secret's data.")]
    [Required, MaxLength(253), RegularExpression(SchemaPatterns.SecretKey)]
    public string Key { get; set; } = "";
}

/// <summary>Reference to a Secret in the same namespace.</summary>
public sealed class SecretReference
{
    [Description("Name of the Secret in the same namespace.")]
    [Required, MaxLength(253), RegularExpression(SchemaPatterns.ObjectName)]
    public string Name { get; set; } = "";
}
