using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Kubernetes.Client;

/// <summary>metav1.ObjectMeta: the standard metadata every object carries.</summary>
public sealed class ObjectMetadata
{
    public string? Name { get; set; }
    public string? GenerateName { get; set; }
    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public long? Generation { get; set; }
    [JsonConverter(typeof(KubernetesTimeConverter))]
    public DateTimeOffset? CreationTimestamp { get; set; }
    [JsonConverter(typeof(KubernetesTimeConverter))]
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

/// <summary>core/v1 ObjectReference (an Event's involvedObject).</summary>
public sealed class ObjectReference
{
    public string? ApiVersion { get; set; }
    public string? Kind { get; set; }
    [JsonPropertyName("namespace")]
    public string? Namespace { get; set; }
    public string? Name { get; set; }
    public string? Uid { get; set; }
    public string? ResourceVersion { get; set; }
    public string? FieldPath { get; set; }
}

/// <summary>core/v1 Secret.</summary>
public sealed class Secret
{
    public string ApiVersion { get; set; } = "v1";
    public string Kind { get; set; } = "Secret";
    public ObjectMetadata Metadata { get; set; } = new();
    public string? Type { get; set; }
    /// <summary>Values are raw bytes; JSON carries them base64-encoded as the API does.</summary>
    public Dictionary<string, byte[]>? Data { get; set; }
    public Dictionary<string, string>? StringData { get; set; }
    public bool? Immutable { get; set; }
}

/// <summary>core/v1 ConfigMap.</summary>
public sealed class ConfigMap
{
    public string ApiVersion { get; set; } = "v1";
    public string Kind { get; set; } = "ConfigMap";
    public ObjectMetadata Metadata { get; set; } = new();
    public Dictionary<string, string>? Data { get; set; }
}

/// <summary>core/v1 Event.</summary>
public sealed class Event
{
    public string ApiVersion { get; set; } = "v1";
    public string Kind { get; set; } = "Event";
    public ObjectMetadata Metadata { get; set; } = new();
    public ObjectReference InvolvedObject { get; set; } = new();
    public string? Reason { get; set; }
    public string? Message { get; set; }
    public EventSource? Source { get; set; }
    [JsonConverter(typeof(KubernetesTimeConverter))]
    public DateTimeOffset? FirstTimestamp { get; set; }
    [JsonConverter(typeof(KubernetesTimeConverter))]
    public DateTimeOffset? LastTimestamp { get; set; }
    public int? Count { get; set; }
    /// <summary>Normal or Warning.</summary>
    public string? Type { get; set; }
    public string? ReportingComponent { get; set; }
    public string? ReportingInstance { get; set; }
}

/// <summary>core/v1 EventSource.</summary>
public sealed class EventSource
{
    public string? Component { get; set; }
    public string? Host { get; set; }
}

/// <summary>coordination.k8s.io/v1 Lease.</summary>
public sealed class Lease
{
    public string ApiVersion { get; set; } = "coordination.k8s.io/v1";
    public string Kind { get; set; } = "Lease";
    public ObjectMetadata Metadata { get; set; } = new();
    public LeaseSpec Spec { get; set; } = new();
}

/// <summary>coordination.k8s.io/v1 LeaseSpec.</summary>
public sealed class LeaseSpec
{
    public string? HolderIdentity { get; set; }
    public int? LeaseDurationSeconds { get; set; }
    [JsonConverter(typeof(KubernetesMicroTimeConverter))]
    public DateTimeOffset? AcquireTime { get; set; }
    [JsonConverter(typeof(KubernetesMicroTimeConverter))]
    public DateTimeOffset? RenewTime { get; set; }
    public int? LeaseTransitions { get; set; }
}

/// <summary>metav1.Status, the body of every API error.</summary>
public sealed class KubernetesStatus
{
    public string? Kind { get; set; }
    public string? ApiVersion { get; set; }
    public string? Status { get; set; }
    public string? Message { get; set; }
    public string? Reason { get; set; }
    public int Code { get; set; }
    public StatusDetails? Details { get; set; }
}

/// <summary>metav1.StatusDetails.</summary>
public sealed class StatusDetails
{
    public string? Name { get; set; }
    public string? Group { get; set; }
    public string? Kind { get; set; }
    public string? Uid { get; set; }
    public List<StatusCause>? Causes { get; set; }
    public int? RetryAfterSeconds { get; set; }
}

/// <summary>metav1.StatusCause: one reason an object was rejected.</summary>
public sealed class StatusCause
{
    public string? Reason { get; set; }
    public string? Message { get; set; }
    public string? Field { get; set; }
}

/// <summary>metav1.Time: RFC 3339 with second precision, always UTC.</summary>
public sealed class KubernetesTimeConverter : JsonConverter<DateTimeOffset?>
{
    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else writer.WriteStringValue(value.Value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
    }
}

/// <summary>metav1.MicroTime: RFC 3339 with microseconds ("2006-01-02T15:04:05.000000Z07:00").</summary>
public sealed class KubernetesMicroTimeConverter : JsonConverter<DateTimeOffset?>
{
    public const string Format = "yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'";

    public override DateTimeOffset? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        reader.TokenType == JsonTokenType.Null ? null : DateTimeOffset.Parse(reader.GetString()!, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    public override void Write(Utf8JsonWriter writer, DateTimeOffset? value, JsonSerializerOptions options)
    {
        if (value is null) writer.WriteNullValue();
        else writer.WriteStringValue(value.Value.UtcDateTime.ToString(Format, CultureInfo.InvariantCulture));
    }
}

/// <summary>JSON settings for the API's own types (camelCase, nulls omitted).</summary>
public static class KubernetesJson
{
    public static readonly JsonSerializerOptions Options = Create();

    private static JsonSerializerOptions Create()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        };
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }
}
