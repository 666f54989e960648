using System.Collections;
using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Reflection;
using System.Text.Json.Serialization.Metadata;
using Gateway.Core.Json;
using Gateway.Core.Resources;

namespace Gateway.Operator.Crds;

/// <summary>One additional printer column of a CRD (what <c>kubectl get</c> shows).</summary>
public sealed record PrinterColumn(string Name, string Type, string JsonPath, string Description, string? Format = null);

/// <summary>The names and columns of one custom resource; the schema comes from <see cref="ResourceType"/>.</summary>
public sealed record CrdDefinition(
    Type ResourceType,
    string Kind,
    string Plural,
    string Singular,
    IReadOnlyList<string> ShortNames,
    IReadOnlyList<PrinterColumn> PrinterColumns)
{
    public string Name => $"{Plural}.{TokenGateApi.Group}";
    public string FileName => $"{TokenGateApi.Group}_{Plural}.yaml";
}

/// <summary>
/// Generates the apiextensions.k8s.io/v1 CustomResourceDefinitions from the C# resource types by
/// reflection: property names as TokenGateJson writes them, [Description] on every field (missing ones
/// are an error, so <c>kubectl explain</c> stays useful), DataAnnotations for required fields, bounds,
/// lengths, patterns and enums, [DefaultValue] for defaults, and [CelRule]/[ListMapKeys] for the
/// Kubernetes extensions.
/// </summary>
public static class CrdGenerator
{
    private const string ReadyJsonPath = ".status.conditions[?(@.type==\"Ready\")].status";

    private static PrinterColumn Ready => new("Ready", "string", ReadyJsonPath, "Whether the operator has reconciled the resource successfully.");
    private static PrinterColumn Age => new("Age", "date", ".metadata.creationTimestamp", "Time since the resource was created.");

    /// <summary>The three TokenGate resources.</summary>
    public static IReadOnlyList<CrdDefinition> Definitions { get; } =
    [
        new(typeof(ApiKey), "ApiKey", "apikeys", "apikey", ["ak"],
        [
            new("Owner", "string", ".spec.owner", "The owning UserQuota."),
            new("Prefix", "string", ".status.keyPrefix", "Display prefix of the current key."),
            Ready,
            new("Last Used", "date", ".status.lastUsedAt", "When the key was last used."),
            new("Spend", "number", ".status.spend", "Spend with this key in USD."),
            Age,
        ]),
        new(typeof(UserQuota), "UserQuota", "userquotas", "userquota", ["uq"],
        [
            new("Email", "string", ".spec.user.email", "E-mail address of the user."),
            new("Balance", "number", ".status.balance", "Current balance in USD."),
            new("Spent", "number", ".status.spentThisPeriod", "Spend in the current budget period, USD."),
            new("Budget", "number", ".spec.budget.amount", "Budget amount in USD per period."),
            Ready,
            Age,
        ]),
        new(typeof(UpstreamAccount), "UpstreamAccount", "upstreamaccounts", "upstreamaccount", ["ua"],
        [
            new("Provider", "string", ".spec.provider", "Provider API dialect."),
            new("Models", "string", ".spec.models[*].name", "Models this account serves."),
            new("Priority", "integer", ".spec.priority", "Priority tier; lower tiers are tried first."),
            new("Healthy", "string", ".status.conditions[?(@.type==\"Healthy\")].status", "Whether recent requests to the provider succeeded."),
            // A string, not a date: kubectl prints future dates as <invalid>.
            new("Expires", "string", ".status.tokenExpiresAt", "When the OAuth access token expires (the operator refreshes it oauth.refreshBefore ahead)."),
            new("Cooldown", "string", ".status.cooldownUntil", "Until when the proxies hold the account in cooldown (an upstream 429 with Retry-After, or repeated failures)."),
            new("Requests Today", "integer", ".status.requestsToday", "Requests sent to the account in the last 24 hours (rolling), by every proxy replica."),
            Ready,
            Age,
        ]),
    ];

    /// <summary>The generated files: file name → YAML text.</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> GenerateAll() =>
        [.. Definitions.Select(d => new KeyValuePair<string, string>(d.FileName, Generate(d)))];

    /// <summary>The YAML of one CRD.</summary>
    public static string Generate(CrdDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var version = new YamlMap
        {
            { "name", TokenGateApi.Version },
            { "served", true },
            { "storage", true },
            { "subresources", new YamlMap { { "status", new YamlMap() } } },
            { "additionalPrinterColumns", definition.PrinterColumns.Select(ColumnYaml).ToList<object>() },
            { "schema", new YamlMap { { "openAPIV3Schema", RootSchema(definition) } } },
        };
        var crd = new YamlMap
        {
            { "apiVersion", "apiextensions.k8s.io/v1" },
            { "kind", "CustomResourceDefinition" },
            { "metadata", new YamlMap
                {
                    { "name", definition.Name },
                    { "labels", new YamlMap { { "app.kubernetes.io/part-of", "tokengate" } } },
                }
            },
            { "spec", new YamlMap
                {
                    { "group", TokenGateApi.Group },
                    { "names", new YamlMap
                        {
                            { "kind", definition.Kind },
                            { "listKind", definition.Kind + "List" },
                            { "plural", definition.Plural },
                            { "singular", definition.Singular },
                            { "shortNames", definition.ShortNames.ToList<object>() },
                            { "categories", new List<object> { TokenGateApi.Category } },
                        }
                    },
                    { "scope", "Namespaced" },
                    { "versions", new List<object> { version } },
                }
            },
        };
        return YamlEmitter.Write(crd,
            "Generated from the C# types in operator/Gateway.Core/Resources by\n" +
            "`dotnet run --project operator/Gateway.Operator -- crds --out <dir>` (make crds). Do not edit.");
    }

    private static YamlMap ColumnYaml(PrinterColumn c)
    {
        var m = new YamlMap { { "name", c.Name }, { "type", c.Type } };
        if (c.Format is not null) m.Add("format", c.Format);
        m.Add("description", c.Description);
        m.Add("jsonPath", c.JsonPath);
        return m;
    }

    private static YamlMap RootSchema(CrdDefinition d)
    {
        var description = d.ResourceType.GetCustomAttribute<DescriptionAttribute>()?.Description
            ?? throw new InvalidOperationException($"{d.ResourceType.Name} has no [Description]; kubectl explain needs one.");
        var baseType = d.ResourceType.BaseType!;
        if (!baseType.IsGenericType || baseType.GetGenericTypeDefinition() != typeof(CustomResource<,>))
        {
            throw new InvalidOperationException($"{d.ResourceType.Name} must derive from CustomResource<TSpec, TStatus>.");
        }
        var args = baseType.GetGenericArguments();
        var spec = ObjectSchema(args[0], []);
        spec.Insert(0, new("description", $"Desired state of the {d.Kind}."));
        var status = ObjectSchema(args[1], []);
        status.Insert(0, new("description", $"State of the {d.Kind} observed by the operator."));
        return new YamlMap
        {
            { "description", description },
            { "type", "object" },
            { "required", new List<object> { "spec" } },
            { "properties", new YamlMap
                {
                    { "apiVersion", new YamlMap
                        {
                            { "description", "Versioned schema of this representation of an object; servers convert recognized schemas to the latest internal value." },
                            { "type", "string" },
                        }
                    },
                    { "kind", new YamlMap
                        {
                            { "description", "REST resource this object represents, in CamelCase; servers infer it from the endpoint the client submits requests to." },
                            { "type", "string" },
                        }
                    },
                    // Structural schemas leave metadata to the API server: only its type is allowed here.
                    { "metadata", new YamlMap { { "type", "object" } } },
                    { "spec", spec },
                    { "status", status },
                }
            },
        };
    }

    /// <summary>The schema of a class: properties as TokenGateJson serializes them.</summary>
    internal static YamlMap ObjectSchema(Type type, HashSet<Type> visiting)
    {
        if (!visiting.Add(type)) throw new InvalidOperationException($"{type.Name} is recursive; CRD schemas cannot express that.");
        var info = TokenGateJson.Options.GetTypeInfo(type);
        if (info.Kind != JsonTypeInfoKind.Object) throw new InvalidOperationException($"{type.Name} does not serialize as a JSON object.");

        var properties = new YamlMap();
        var required = new List<object>();
        foreach (var p in info.Properties)
        {
            if (p.AttributeProvider is not PropertyInfo member) continue;
            var description = member.GetCustomAttribute<DescriptionAttribute>()?.Description;
            if (string.IsNullOrWhiteSpace(description))
            {
                throw new InvalidOperationException(
                    $"{type.Name}.{member.Name} has no [Description]. Every field of a TokenGate resource needs one so that kubectl explain documents it.");
            }
            var schema = new YamlMap { { "description", description } };
            foreach (var pair in TypeSchema(member.PropertyType, member, visiting)) schema.Add(pair);
            AddValidations(schema, member);
            properties.Add(p.Name, schema);
            if (member.GetCustomAttribute<RequiredAttribute>() is not null) required.Add(p.Name);
        }
        visiting.Remove(type);

        var result = new YamlMap { { "type", "object" } };
        if (required.Count > 0) result.Add("required", required);
        result.Add("properties", properties);
        AddCelRules(result, type.GetCustomAttributes<CelRuleAttribute>());
        return result;
    }

    private static YamlMap TypeSchema(Type type, PropertyInfo member, HashSet<Type> visiting)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type == typeof(string)) return new YamlMap { { "type", "string" } };
        if (type == typeof(bool)) return new YamlMap { { "type", "boolean" } };
        if (type == typeof(int) || type == typeof(short)) return new YamlMap { { "type", "integer" }, { "format", "int32" } };
        if (type == typeof(long)) return new YamlMap { { "type", "integer" }, { "format", "int64" } };
        // Money is a decimal in C#; the API takes plain YAML numbers, so the schema says number.
        if (type == typeof(decimal)) return new YamlMap { { "type", "number" } };
        if (type == typeof(double) || type == typeof(float)) return new YamlMap { { "type", "number" }, { "format", "double" } };
        if (type == typeof(DateTimeOffset) || type == typeof(DateTime)) return new YamlMap { { "type", "string" }, { "format", "date-time" } };
        if (type.IsEnum) throw new NotSupportedException($"{member.DeclaringType?.Name}.{member.Name}: use string constants with [AllowedValues] instead of a C# enum.");

        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            var args = type.GetGenericArguments();
            if (args[0] != typeof(string)) throw new NotSupportedException($"{member.Name}: map keys must be strings.");
            return new YamlMap { { "type", "object" }, { "additionalProperties", TypeSchema(args[1], member, visiting) } };
        }
        var element = ElementType(type);
        if (element is not null)
        {
            var items = element.IsClass && element != typeof(string) ? ObjectSchema(element, visiting) : TypeSchema(element, member, visiting);
            return new YamlMap { { "type", "array" }, { "items", items } };
        }
        if (type.IsClass) return ObjectSchema(type, visiting);
        throw new NotSupportedException($"{member.DeclaringType?.Name}.{member.Name}: no schema mapping for {type}.");
    }

    private static Type? ElementType(Type type)
    {
        if (type == typeof(string)) return null;
        if (type.IsArray) return type.GetElementType();
        if (type.IsGenericType && typeof(IEnumerable).IsAssignableFrom(type)) return type.GetGenericArguments()[0];
        return null;
    }

    private static void AddValidations(YamlMap schema, PropertyInfo member)
    {
        var isArray = schema["type"] as string == "array";
        if (member.GetCustomAttribute<AllowedValuesAttribute>() is { } allowed) schema.Add("enum", allowed.Values.Select(v => v!).ToList());
        if (member.GetCustomAttribute<RangeAttribute>() is { } range)
        {
            var min = Convert.ToDouble(range.Minimum, System.Globalization.CultureInfo.InvariantCulture);
            var max = Convert.ToDouble(range.Maximum, System.Globalization.CultureInfo.InvariantCulture);
            if (double.IsFinite(min))
            {
                schema.Add("minimum", min);
                if (range.MinimumIsExclusive) schema.Add("exclusiveMinimum", true);
            }
            if (double.IsFinite(max))
            {
                schema.Add("maximum", max);
                if (range.MaximumIsExclusive) schema.Add("exclusiveMaximum", true);
            }
        }
        if (member.GetCustomAttribute<MinLengthAttribute>() is { } minLength) schema.Add(isArray ? "minItems" : "minLength", minLength.Length);
        if (member.GetCustomAttribute<MaxLengthAttribute>() is { } maxLength) schema.Add(isArray ? "maxItems" : "maxLength", maxLength.Length);
        if (member.GetCustomAttribute<RegularExpressionAttribute>() is { } regex) schema.Add("pattern", regex.Pattern);
        if (member.GetCustomAttribute<DefaultValueAttribute>() is { Value: { } value }) schema.Add("default", value);
        if (member.GetCustomAttribute<ListMapKeysAttribute>() is { } keys)
        {
            if (!isArray) throw new InvalidOperationException($"{member.Name}: [ListMapKeys] applies to lists.");
            schema.Add("x-kubernetes-list-type", "map");
            schema.Add("x-kubernetes-list-map-keys", keys.Keys.ToList<object>());
        }
        AddCelRules(schema, member.GetCustomAttributes<CelRuleAttribute>());
    }

    private static void AddCelRules(YamlMap schema, IEnumerable<CelRuleAttribute> rules)
    {
        var list = new List<object>();
        foreach (var r in rules)
        {
            var m = new YamlMap { { "rule", r.Rule } };
            if (r.Message is not null) m.Add("message", r.Message);
            if (r.FieldPath is not null) m.Add("fieldPath", r.FieldPath);
            list.Add(m);
        }
        if (list.Count > 0) schema.Add("x-kubernetes-validations", list);
    }
}
