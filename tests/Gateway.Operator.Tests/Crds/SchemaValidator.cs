using System.Globalization;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Gateway.Operator.Tests.Crds;

/// <summary>
/// Checks a YAML object against a generated openAPIV3Schema the way the API server's schema validation
/// would (types, required, enum, bounds, lengths, patterns, list-map key uniqueness). CEL rules are not
/// evaluated here. Unknown fields are reported, where the API server would prune them, so a field name
/// that differs from the schema fails loudly.
/// </summary>
internal static class SchemaValidator
{
    public static List<string> Validate(YamlNode value, YamlMappingNode schema)
    {
        var errors = new List<string>();
        Check(value, schema, "", errors);
        return errors;
    }

    private static string? Get(YamlMappingNode schema, string key) =>
        schema.Children.TryGetValue(new YamlScalarNode(key), out var n) ? ((YamlScalarNode)n).Value : null;

    private static YamlNode? Node(YamlMappingNode schema, string key) =>
        schema.Children.TryGetValue(new YamlScalarNode(key), out var n) ? n : null;

    private static bool IsPlain(YamlScalarNode s) => s.Style is YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any;

    private static void Check(YamlNode value, YamlMappingNode schema, string path, List<string> errors)
    {
        var type = Get(schema, "type");
        switch (type)
        {
            case "object":
                if (value is not YamlMappingNode map) { errors.Add($"{path}: must be an object"); return; }
                var properties = Node(schema, "properties") as YamlMappingNode;
                var additional = Node(schema, "additionalProperties") as YamlMappingNode;
                if (Node(schema, "required") is YamlSequenceNode required)
                {
                    foreach (var r in required.Cast<YamlScalarNode>())
                    {
                        if (!map.Children.ContainsKey(new YamlScalarNode(r.Value))) errors.Add($"{path}.{r.Value}: required");
                    }
                }
                foreach (var (k, v) in map.Children)
                {
                    var key = ((YamlScalarNode)k).Value!;
                    if (properties is not null && properties.Children.TryGetValue(new YamlScalarNode(key), out var ps)) Check(v, (YamlMappingNode)ps, $"{path}.{key}", errors);
                    else if (additional is not null) Check(v, additional, $"{path}.{key}", errors);
                    else if (properties is not null) errors.Add($"{path}.{key}: unknown field");
                }
                break;
            case "array":
                if (value is not YamlSequenceNode seq) { errors.Add($"{path}: must be an array"); return; }
                var n = seq.Children.Count;
                if (Get(schema, "minItems") is { } minItems && n < int.Parse(minItems, CultureInfo.InvariantCulture)) errors.Add($"{path}: should have at least {minItems} items");
                if (Get(schema, "maxItems") is { } maxItems && n > int.Parse(maxItems, CultureInfo.InvariantCulture)) errors.Add($"{path}: should have at most {maxItems} items");
                for (var i = 0; i < n; i++) Check(seq.Children[i], (YamlMappingNode)Node(schema, "items")!, $"{path}[{i}]", errors);
                if (Get(schema, "x-kubernetes-list-type") == "map")
                {
                    var keys = ((YamlSequenceNode)Node(schema, "x-kubernetes-list-map-keys")!).Cast<YamlScalarNode>().Select(k => k.Value!).ToList();
                    var seen = new HashSet<string>();
                    foreach (var item in seq.Children.OfType<YamlMappingNode>())
                    {
                        var id = string.Join("/", keys.Select(k => item.Children.TryGetValue(new YamlScalarNode(k), out var kv) ? ((YamlScalarNode)kv).Value : ""));
                        if (!seen.Add(id)) errors.Add($"{path}: Duplicate value: {id}");
                    }
                }
                break;
            case "string":
                if (value is not YamlScalarNode str || (IsPlain(str) && (str.Value is "true" or "false" or "null" || double.TryParse(str.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))))
                {
                    errors.Add($"{path}: must be a string");
                    return;
                }
                var s = str.Value!;
                if (Get(schema, "minLength") is { } minLength && s.Length < int.Parse(minLength, CultureInfo.InvariantCulture)) errors.Add($"{path}: should be at least {minLength} chars long");
                if (Get(schema, "maxLength") is { } maxLength && s.Length > int.Parse(maxLength, CultureInfo.InvariantCulture)) errors.Add($"{path}: may not be more than {maxLength} chars");
                if (Get(schema, "pattern") is { } pattern && !Regex.IsMatch(s, pattern)) errors.Add($"{path}: should match '{pattern}'");
                if (Get(schema, "format") == "date-time" && !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, out _)) errors.Add($"{path}: must be a date-time");
                CheckEnum(s, schema, path, errors);
                break;
            case "integer":
            case "number":
                if (value is not YamlScalarNode num || !IsPlain(num) || !double.TryParse(num.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
                {
                    errors.Add($"{path}: must be a {type}");
                    return;
                }
                if (type == "integer" && d != Math.Floor(d)) errors.Add($"{path}: must be an integer");
                if (Get(schema, "minimum") is { } min)
                {
                    var m = double.Parse(min, CultureInfo.InvariantCulture);
                    var exclusive = Get(schema, "exclusiveMinimum") == "true";
                    if (exclusive ? d <= m : d < m) errors.Add($"{path}: should be greater than {(exclusive ? "" : "or equal to ")}{min}");
                }
                if (Get(schema, "maximum") is { } max && d > double.Parse(max, CultureInfo.InvariantCulture)) errors.Add($"{path}: should be less than or equal to {max}");
                break;
            case "boolean":
                if (value is not YamlScalarNode b || !IsPlain(b) || b.Value is not ("true" or "false")) errors.Add($"{path}: must be a boolean");
                break;
            default:
                errors.Add($"{path}: schema has no type");
                break;
        }
    }

    private static void CheckEnum(string value, YamlMappingNode schema, string path, List<string> errors)
    {
        if (Node(schema, "enum") is YamlSequenceNode values && !values.Cast<YamlScalarNode>().Any(v => v.Value == value))
        {
            errors.Add($"{path}: Unsupported value: \"{value}\"");
        }
    }
}
