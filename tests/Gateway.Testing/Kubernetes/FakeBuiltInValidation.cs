using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Gateway.Testing.Kubernetes;

/// <summary>
/// The API server's own validation that applies before any schema: object names (every kind) and the
/// Secret rules the operator can run into (data keys, type immutability, kubernetes.io/tls keys, the
/// Opaque default). Messages are the real server's, byte for byte, as FakeMatchesRealApiServerTests checks.
/// </summary>
internal static partial class FakeBuiltInValidation
{
    private const string SubdomainMessage = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    private const string ConfigKeyMessage = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

    public static List<FakeValidationCause> Create(FakeResourceType type, JsonObject obj)
    {
        var causes = new List<FakeValidationCause>();
        var name = obj["metadata"]?["name"]?.GetValue<string>() ?? "";
        if (name.Length > 253) causes.Add(new("metadata.name", $"Invalid value: \"{name}\": must be no more than 253 characters"));
        else if (!Subdomain().IsMatch(name)) causes.Add(new("metadata.name", $"Invalid value: \"{name}\": {SubdomainMessage}"));
        if (IsSecret(type))
        {
            obj["type"] ??= "Opaque";
            Secret(obj, causes);
        }
        return causes;
    }

    public static List<FakeValidationCause> Update(FakeResourceType type, JsonObject current, JsonObject next)
    {
        var causes = new List<FakeValidationCause>();
        if (!IsSecret(type)) return causes;
        next["type"] ??= "Opaque";
        var before = current["type"]?.GetValue<string>();
        var after = next["type"]?.GetValue<string>();
        if (before != after) causes.Add(new("type", $"Invalid value: \"{after}\": field is immutable"));
        Secret(next, causes);
        return causes;
    }

    private static bool IsSecret(FakeResourceType type) => type.BuiltIn && type.Group.Length == 0 && type.Plural == "secrets";

    private static void Secret(JsonObject obj, List<FakeValidationCause> causes)
    {
        var data = obj["data"] as JsonObject;
        foreach (var (key, _) in data ?? [])
        {
            if (!ConfigKey().IsMatch(key)) causes.Add(new($"data[{key}]", $"Invalid value: \"{key}\": {ConfigKeyMessage}"));
        }
        if (obj["type"]?.GetValue<string>() == "kubernetes.io/tls")
        {
            foreach (var required in new[] { "tls.crt", "tls.key" })
            {
                if (data?.ContainsKey(required) != true) causes.Add(new($"data[{required}]", "Required value", "FieldValueRequired"));
            }
        }
    }

    [GeneratedRegex(@"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")]
    private static partial Regex Subdomain();

    [GeneratedRegex(@"^[-._a-zA-Z0-9]+$")]
    private static partial Regex ConfigKey();
}
