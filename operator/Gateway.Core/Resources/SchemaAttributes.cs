namespace Gateway.Core.Resources;

/// <summary>
/// A CEL rule the API server checks (<c>x-kubernetes-validations</c> in the generated CRD). On a class it
/// applies to every object of that type; on a property, <c>self</c> is the property's value.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Property, AllowMultiple = true)]
public sealed class CelRuleAttribute(string rule) : Attribute
{
    public string Rule { get; } = rule;

    /// <summary>What kubectl shows when the rule fails: say what is wrong and how to fix it.</summary>
    public string? Message { get; init; }

    /// <summary>Field the error is reported on, relative to self (e.g. ".models").</summary>
    public string? FieldPath { get; init; }
}

/// <summary>
/// Marks a list as <c>x-kubernetes-list-type: map</c>: items are identified by these keys, which must be
/// unique, and server-side apply merges items by key instead of replacing the whole list.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ListMapKeysAttribute(params string[] keys) : Attribute
{
    public IReadOnlyList<string> Keys { get; } = keys;
}

/// <summary>Regular expressions shared by the resource schemas.</summary>
public static class SchemaPatterns
{
    /// <summary>A Kubernetes object name (RFC 1123 subdomain), e.g. of a Secret or a UserQuota.</summary>
    public const string ObjectName = @"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

    /// <summary>A key of a Secret's data.</summary>
    public const string SecretKey = @"^[-._a-zA-Z0-9]+$";

    /// <summary>A Go duration such as 24h, 90m or 1h30m.</summary>
    public const string Duration = @"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

    /// <summary>An http or https URL.</summary>
    public const string HttpUrl = @"^https?://\S+$";

    /// <summary>An e-mail address (loose: one @, no spaces).</summary>
    public const string Email = @"^[^@\s]+@[^@\s]+$";

    /// <summary>An IANA time zone name such as UTC, Europe/Berlin or America/Argentina/Buenos_Aires.</summary>
    public const string TimeZone = @"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$";

    /// <summary>A grant id: letters, digits, '-', '_' and '.', starting and ending with a letter or digit.</summary>
    public const string GrantId = @"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";
}
