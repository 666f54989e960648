using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gateway.Testing.Kubernetes;

/// <summary>
/// Serves the resources a CustomResourceDefinition declares and enforces its structural openAPIV3Schema the
/// way the API server does on create and update: unknown fields pruned, defaults applied, then types,
/// required fields, enums, bounds, lengths, patterns, item counts and date-time formats checked, failures
/// answered with 422 Invalid and one cause per field; duplicates in x-kubernetes-list-type set/map lists are
/// reported; CEL rules (x-kubernetes-validations) are evaluated with <see cref="FakeCel"/> — or, as on the real
/// server, reported as not checked when a blocking error (required, wrong type) came first.
/// </summary>
public static class FakeCrdSchema
{
    /// <summary>Registers every served version of the CRD(s) in the YAML (multi-document allowed).</summary>
    public static IReadOnlyList<FakeResourceType> RegisterCrds(this FakeApiServer server, string yaml)
    {
        var registered = new List<FakeResourceType>();
        foreach (var doc in YamlToJson.ParseAll(yaml))
        {
            if (doc is not JsonObject crd || crd["kind"]?.GetValue<string>() != "CustomResourceDefinition") continue;
            var spec = crd["spec"]!;
            var group = spec["group"]!.GetValue<string>();
            var plural = spec["names"]!["plural"]!.GetValue<string>();
            var kind = spec["names"]!["kind"]!.GetValue<string>();
            var namespaced = spec["scope"]?.GetValue<string>() != "Cluster";
            foreach (var v in spec["versions"]!.AsArray())
            {
                if (v?["served"]?.GetValue<bool>() == false) continue;
                var names = spec["names"]!;
                var type = new FakeResourceType(group, v!["name"]!.GetValue<string>(), plural, kind, namespaced, HasStatus: v["subresources"]?["status"] is not null)
                {
                    AllowUnconditionalUpdate = false,
                    Singular = names["singular"]?.GetValue<string>(),
                    ShortNames = (names["shortNames"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToList() ?? [],
                    Categories = (names["categories"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToList() ?? [],
                    PrinterColumns = (v["additionalPrinterColumns"] as JsonArray)?.Select(c => new FakePrinterColumn(
                        c!["name"]!.GetValue<string>(),
                        c["type"]!.GetValue<string>(),
                        c["jsonPath"]!.GetValue<string>(),
                        c["description"]?.GetValue<string>(),
                        c["priority"]?.GetValue<int>() ?? 0,
                        c["format"]?.GetValue<string>())).ToList() ?? [],
                    Schema = v["schema"]?["openAPIV3Schema"]?.DeepClone() as JsonObject,
                };
                server.Register(type);
                if (v["schema"]?["openAPIV3Schema"] is JsonObject schema)
                {
                    var s = (JsonObject)schema.DeepClone();
                    server.SetValidator(type, obj => Apply(s, obj));
                }
                registered.Add(type);
            }
        }
        return registered;
    }

    /// <summary>Registers the CRDs of every *.yaml file in a folder (e.g. config/crd).</summary>
    public static IReadOnlyList<FakeResourceType> RegisterCrdsFromDirectory(this FakeApiServer server, string directory) =>
        Directory.GetFiles(directory, "*.yaml").Order(StringComparer.Ordinal).SelectMany(f => server.RegisterCrds(File.ReadAllText(f))).ToList();

    /// <summary>Parses (multi-document) YAML such as samples into JSON objects, typing plain scalars as YAML 1.2 does.</summary>
    public static IReadOnlyList<JsonObject> ParseYaml(string yaml) => YamlToJson.ParseAll(yaml).OfType<JsonObject>().ToList();

    /// <summary>Prunes, defaults and validates <paramref name="obj"/> in place; returns the failures.</summary>
    public static List<FakeValidationCause> Apply(JsonObject schema, JsonObject obj)
    {
        var causes = new List<FakeValidationCause>();
        // apiVersion, kind and metadata are the server's, not the schema's.
        var props = schema["properties"] as JsonObject;
        foreach (var (key, _) in obj.ToList())
        {
            if (key is "apiVersion" or "kind" or "metadata") continue;
            if (props?[key] is JsonObject propSchema) Walk(propSchema, obj, key, key, causes);
            else if (schema["x-kubernetes-preserve-unknown-fields"]?.GetValue<bool>() != true) obj.Remove(key);
        }
        if (props is not null)
        {
            foreach (var (key, ps) in props)
            {
                if (key is "apiVersion" or "kind" or "metadata" || obj.ContainsKey(key)) continue;
                if (ps?["default"] is { } d)
                {
                    obj[key] = d.DeepClone();
                    Walk((JsonObject)ps, obj, key, key, causes);
                }
            }
        }
        CheckRequired(schema, obj, "", causes);
        // The real server skips CEL rules after a blocking error and says so in one more cause.
        if (HasCelRules(schema) && causes.Any(c => c.Reason is "FieldValueRequired" or "FieldValueTypeInvalid"))
        {
            causes.Add(new("<nil>", "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"));
        }
        else
        {
            CheckCel(schema, obj, "", causes);
        }
        return causes;
    }

    /// <summary>Evaluates the x-kubernetes-validations rules on every present node, after defaulting, as the real server does.</summary>
    private static void CheckCel(JsonObject schema, JsonNode? node, string path, List<FakeValidationCause> causes)
    {
        if (node is null) return;
        foreach (var rule in (schema["x-kubernetes-validations"] as JsonArray ?? []).OfType<JsonObject>())
        {
            var expression = rule["rule"]!.GetValue<string>();
            if (expression.Contains("oldSelf", StringComparison.Ordinal)) continue; // transition rules: not evaluated by the fake
            var fieldPath = rule["fieldPath"]?.GetValue<string>() is { Length: > 0 } fp ? path + fp : path;
            var field = fieldPath.Length == 0 ? "<nil>" : fieldPath.TrimStart('.');
            var shown = $"Invalid value: \"{KindName(node.GetValueKind())}\": ";
            try
            {
                if (FakeCel.Evaluate(expression, node)) continue;
                causes.Add(new(field, shown + (rule["message"]?.GetValue<string>() ?? "failed rule: " + expression), rule["reason"]?.GetValue<string>() ?? "FieldValueInvalid"));
            }
            catch (InvalidOperationException e)
            {
                causes.Add(new(field, shown + e.Message + " evaluating rule: " + expression));
            }
        }
        switch (node)
        {
            case JsonObject o:
                var props = schema["properties"] as JsonObject;
                foreach (var (k, v) in o)
                {
                    if (path.Length == 0 && k is "apiVersion" or "kind" or "metadata") continue;
                    var child = props?[k] as JsonObject ?? schema["additionalProperties"] as JsonObject;
                    if (child is not null) CheckCel(child, v, path.Length == 0 ? k : path + "." + k, causes);
                }
                break;
            case JsonArray a when schema["items"] is JsonObject items:
                for (var i = 0; i < a.Count; i++) CheckCel(items, a[i], $"{path}[{i}]", causes);
                break;
        }
    }

    private static bool HasCelRules(JsonNode? node) => node switch
    {
        JsonObject o => o.ContainsKey("x-kubernetes-validations") || o.Any(p => HasCelRules(p.Value)),
        JsonArray a => a.Any(HasCelRules),
        _ => false,
    };

    private static void Walk(JsonObject schema, JsonNode parent, string key, string path, List<FakeValidationCause> causes)
    {
        var node = parent is JsonObject po ? po[key] : ((JsonArray)parent)[int.Parse(key, CultureInfo.InvariantCulture)];
        if (node is null)
        {
            if (schema["nullable"]?.GetValue<bool>() != true) causes.Add(new(path, $"Invalid value: \"null\": {path} in body must be of type {schema["type"]?.GetValue<string>() ?? "object"}: \"null\"", TypeInvalid));
            return;
        }
        var type = schema["type"]?.GetValue<string>();
        var intOrString = schema["x-kubernetes-int-or-string"]?.GetValue<bool>() == true;
        var kind = node.GetValueKind();
        if (intOrString)
        {
            if (kind is not JsonValueKind.String and not JsonValueKind.Number) causes.Add(new(path, $"Invalid value: {Show(node)}: {path} in body must be of type int-or-string", TypeInvalid));
            return;
        }
        if (type is not null && !TypeMatches(type, node))
        {
            causes.Add(new(path, $"Invalid value: \"{KindName(kind)}\": {path} in body must be of type {type}: \"{KindName(kind)}\"", TypeInvalid));
            return;
        }

        switch (node)
        {
            case JsonObject o:
                var props = schema["properties"] as JsonObject;
                var additional = schema["additionalProperties"];
                var preserve = schema["x-kubernetes-preserve-unknown-fields"]?.GetValue<bool>() == true;
                foreach (var (k, _) in o.ToList())
                {
                    if (props?[k] is JsonObject ps) Walk(ps, o, k, path + "." + k, causes);
                    else if (additional is JsonObject adds) Walk(adds, o, k, path + "." + k, causes);
                    else if (!preserve && additional?.GetValueKind() != JsonValueKind.True) o.Remove(k);
                }
                if (props is not null)
                {
                    foreach (var (k, ps) in props)
                    {
                        if (o.ContainsKey(k) || ps?["default"] is not { } d) continue;
                        o[k] = d.DeepClone();
                        Walk((JsonObject)ps, o, k, path + "." + k, causes);
                    }
                }
                CheckRequired(schema, o, path, causes);
                if (schema["minProperties"] is { } minP && o.Count < minP.GetValue<int>()) causes.Add(new(path, $"Invalid value: {o.Count}: {path} in body should have at least {minP} properties"));
                if (schema["maxProperties"] is { } maxP && o.Count > maxP.GetValue<int>()) causes.Add(new(path, $"Too many: {o.Count}: must have at most {maxP} items", "FieldValueTooMany"));
                break;
            case JsonArray a:
                if (schema["minItems"] is { } minI && a.Count < minI.GetValue<int>()) causes.Add(new(path, $"Invalid value: {a.Count}: {path} in body should have at least {minI} items"));
                if (schema["maxItems"] is { } maxI && a.Count > maxI.GetValue<int>()) causes.Add(new(path, $"Too many: {a.Count}: must have at most {maxI} items", "FieldValueTooMany"));
                if (schema["items"] is JsonObject items)
                {
                    for (var i = 0; i < a.Count; i++) Walk(items, a, i.ToString(CultureInfo.InvariantCulture), $"{path}[{i}]", causes);
                }
                CheckListType(schema, a, path, causes);
                break;
            default:
                CheckScalar(schema, node, kind, path, causes);
                break;
        }
    }

    private static void CheckScalar(JsonObject schema, JsonNode node, JsonValueKind kind, string path, List<FakeValidationCause> causes)
    {
        if (schema["enum"] is JsonArray allowed && !allowed.Any(e => JsonNode.DeepEquals(e, node)))
        {
            var list = string.Join(", ", allowed.Select(e => e!.ToJsonString()));
            causes.Add(new(path, $"Unsupported value: {node.ToJsonString()}: supported values: {list}", "FieldValueNotSupported"));
        }
        if (kind == JsonValueKind.Number)
        {
            var v = node.GetValue<JsonElement>().GetDouble();
            if (schema["minimum"] is { } min)
            {
                var m = min.GetValue<JsonElement>().GetDouble();
                var exclusive = schema["exclusiveMinimum"]?.GetValue<bool>() == true;
                if (exclusive ? v <= m : v < m) causes.Add(new(path, $"Invalid value: {Show(node)}: {path} in body should be greater than {(exclusive ? "" : "or equal to ")}{Show(min)}"));
            }
            if (schema["maximum"] is { } max)
            {
                var m = max.GetValue<JsonElement>().GetDouble();
                var exclusive = schema["exclusiveMaximum"]?.GetValue<bool>() == true;
                if (exclusive ? v >= m : v > m) causes.Add(new(path, $"Invalid value: {Show(node)}: {path} in body should be less than {(exclusive ? "" : "or equal to ")}{Show(max)}"));
            }
        }
        if (kind == JsonValueKind.String)
        {
            var s = node.GetValue<string>();
            if (schema["minLength"] is { } minL && s.Length < minL.GetValue<int>()) causes.Add(new(path, $"Invalid value: \"{s}\": {path} in body should be at least {minL} chars long"));
            if (schema["maxLength"] is { } maxL && s.Length > maxL.GetValue<int>()) causes.Add(new(path, $"Too long: may not be more than {maxL} bytes", "FieldValueTooLong"));
            if (schema["pattern"]?.GetValue<string>() is { } pattern && !Regex.IsMatch(s, pattern, RegexOptions.None, TimeSpan.FromSeconds(1)))
            {
                causes.Add(new(path, $"Invalid value: \"{s}\": {path} in body should match '{pattern}'"));
            }
            if (schema["format"]?.GetValue<string>() == "date-time" && !DateTimeOffset.TryParse(s, CultureInfo.InvariantCulture, DateTimeStyles.None, out _))
            {
                causes.Add(new(path, $"Invalid value: \"{s}\": {path} in body must be of type date-time: \"{s}\"", TypeInvalid));
            }
        }
    }

    private const string TypeInvalid = "FieldValueTypeInvalid";

    /// <summary>x-kubernetes-list-type set and map: a repeated item (set) or key (map) is a Duplicate value at its index.</summary>
    private static void CheckListType(JsonObject schema, JsonArray a, string path, List<FakeValidationCause> causes)
    {
        var listType = schema["x-kubernetes-list-type"]?.GetValue<string>();
        if (listType is not ("set" or "map")) return;
        var keys = (schema["x-kubernetes-list-map-keys"] as JsonArray)?.Select(k => k!.GetValue<string>()).ToList() ?? [];
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < a.Count; i++)
        {
            string shown;
            if (listType == "set") shown = GoValue(a[i]);
            else if (a[i] is JsonObject item)
            {
                // Go's %#v of the key fields: map[string]interface {}{"name":"a"}.
                shown = "map[string]interface {}{" + string.Join(", ", keys.Order(StringComparer.Ordinal).Where(item.ContainsKey).Select(k => $"\"{k}\":{GoValue(item[k])}")) + "}";
            }
            else continue;
            if (!seen.Add(shown)) causes.Add(new($"{path}[{i}]", "Duplicate value: " + shown, "FieldValueDuplicate"));
        }
    }

    private static string GoValue(JsonNode? node) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => "\"" + s + "\"",
        null => "interface {}(nil)",
        _ => node.ToJsonString(),
    };

    private static void CheckRequired(JsonObject schema, JsonObject obj, string path, List<FakeValidationCause> causes)
    {
        if (schema["required"] is not JsonArray required) return;
        foreach (var r in required)
        {
            var name = r!.GetValue<string>();
            if (!obj.ContainsKey(name)) causes.Add(new(path.Length == 0 ? name : path + "." + name, "Required value", "FieldValueRequired"));
        }
    }

    private static bool TypeMatches(string type, JsonNode node)
    {
        var kind = node.GetValueKind();
        return type switch
        {
            "object" => kind == JsonValueKind.Object,
            "array" => kind == JsonValueKind.Array,
            "string" => kind == JsonValueKind.String,
            "boolean" => kind is JsonValueKind.True or JsonValueKind.False,
            "number" => kind == JsonValueKind.Number,
            "integer" => kind == JsonValueKind.Number && IsInteger(node),
            _ => true,
        };
    }

    private static bool IsInteger(JsonNode node)
    {
        var d = node.GetValue<JsonElement>().GetDouble();
        return Math.Abs(d % 1) < double.Epsilon;
    }

    private static string Show(JsonNode node) => node.ToJsonString();

    private static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        _ => "null",
    };

    /// <summary>YAML to JSON with YAML 1.2 core-schema scalars (plain true/false/null/numbers are typed).</summary>
    private static class YamlToJson
    {
        public static IEnumerable<JsonNode?> ParseAll(string yaml)
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            foreach (var doc in stream.Documents) yield return Convert(doc.RootNode);
        }

        private static JsonNode? Convert(YamlNode node) => node switch
        {
            YamlMappingNode m => new JsonObject(m.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, Convert(c.Value)))),
            YamlSequenceNode s => new JsonArray(s.Children.Select(Convert).ToArray()),
            YamlScalarNode sc => Scalar(sc),
            _ => null,
        };

        private static JsonNode? Scalar(YamlScalarNode sc)
        {
            var v = sc.Value ?? "";
            if (sc.Style is ScalarStyle.Plain)
            {
                if (v is "" or "~" or "null" or "Null" or "NULL") return null;
                if (v is "true" or "True" or "TRUE") return JsonValue.Create(true);
                if (v is "false" or "False" or "FALSE") return JsonValue.Create(false);
                if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonNode.Parse(l.ToString(CultureInfo.InvariantCulture));
                if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && Regex.IsMatch(v, @"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"))
                {
                    return JsonNode.Parse(d.ToString("R", CultureInfo.InvariantCulture));
                }
            }
            return JsonValue.Create(v);
        }
    }
}
