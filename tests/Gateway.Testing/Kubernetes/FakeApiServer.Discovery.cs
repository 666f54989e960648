using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Gateway.Testing.Kubernetes;

/// <summary>
/// Legacy API discovery and server-side Table rendering, so kubectl can talk to the fake:
/// `kubectl get ak,uq,ua`, `kubectl get tokengate` (categories) and CRD printer columns work.
/// </summary>
public sealed partial class FakeApiServer
{
    private async Task<bool> TryServeDiscoveryAsync(HttpContext ctx, string path)
    {
        if (ctx.Request.Method != "GET") return false;
        var seg = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries);
        JsonObject? body = null;
        lock (_gate)
        {
            var types = _types.Values.ToList();
            switch (seg)
            {
                case ["version"]:
                    body = new JsonObject { ["major"] = "1", ["minor"] = "32", ["gitVersion"] = "v1.32.0-fake", ["platform"] = "linux/amd64" };
                    break;
                case ["api"]:
                    body = new JsonObject
                    {
                        ["kind"] = "APIVersions",
                        ["versions"] = new JsonArray("v1"),
                        ["serverAddressByClientCIDRs"] = new JsonArray(new JsonObject { ["clientCIDR"] = "0.0.0.0/0", ["serverAddress"] = BaseAddress.Authority }),
                    };
                    break;
                case ["apis"]:
                    var groups = new JsonArray();
                    foreach (var g in types.Where(t => t.Group.Length > 0).GroupBy(t => t.Group).OrderBy(g => g.Key, StringComparer.Ordinal))
                    {
                        groups.Add(GroupJson(g.Key, g.Select(t => t.Version).Distinct().ToList()));
                    }
                    body = new JsonObject { ["kind"] = "APIGroupList", ["apiVersion"] = "v1", ["groups"] = groups };
                    break;
                case ["apis", var group] when types.Any(t => t.Group == group):
                    body = GroupJson(group, types.Where(t => t.Group == group).Select(t => t.Version).Distinct().ToList());
                    body["kind"] = "APIGroup";
                    body["apiVersion"] = "v1";
                    break;
                case ["openapi", "v3"]:
                    var paths = new JsonObject();
                    foreach (var gv in types.Select(t => (t.Group, t.Version)).Distinct())
                    {
                        var rel = gv.Group.Length == 0 ? "api/" + gv.Version : $"apis/{gv.Group}/{gv.Version}";
                        paths[rel] = new JsonObject { ["serverRelativeURL"] = $"/openapi/v3/{rel}?hash=fake" };
                    }
                    body = new JsonObject { ["paths"] = paths };
                    break;
                case ["openapi", "v3", "api", var version]:
                    body = OpenApiDocument("", version, types);
                    break;
                case ["openapi", "v3", "apis", var group, var version] when types.Any(t => t.Group == group && t.Version == version):
                    body = OpenApiDocument(group, version, types);
                    break;
                case ["api", var version]:
                    body = ResourceListJson("", version, types);
                    break;
                case ["apis", var group, var version] when types.Any(t => t.Group == group && t.Version == version):
                    body = ResourceListJson(group, version, types);
                    break;
            }
        }
        if (body is null) return false;
        await WriteJson(ctx, 200, body);
        return true;
    }

    private static JsonObject GroupJson(string group, List<string> versions)
    {
        var list = new JsonArray();
        foreach (var v in versions) list.Add(new JsonObject { ["groupVersion"] = group + "/" + v, ["version"] = v });
        return new JsonObject
        {
            ["name"] = group,
            ["versions"] = list,
            ["preferredVersion"] = new JsonObject { ["groupVersion"] = group + "/" + versions[0], ["version"] = versions[0] },
        };
    }

    private static JsonObject ResourceListJson(string group, string version, List<FakeResourceType> types)
    {
        var resources = new JsonArray();
        foreach (var t in types.Where(t => t.Group == group && t.Version == version).OrderBy(t => t.Plural, StringComparer.Ordinal))
        {
            var r = new JsonObject
            {
                ["name"] = t.Plural,
                ["singularName"] = t.Singular ?? t.Kind.ToLowerInvariant(),
                ["namespaced"] = t.Namespaced,
                ["kind"] = t.Kind,
                ["verbs"] = new JsonArray("create", "delete", "get", "list", "patch", "update", "watch"),
            };
            if (t.ShortNames.Count > 0) r["shortNames"] = new JsonArray(t.ShortNames.Select(n => (JsonNode)n).ToArray());
            if (t.Categories.Count > 0) r["categories"] = new JsonArray(t.Categories.Select(n => (JsonNode)n).ToArray());
            resources.Add(r);
            if (t.HasStatus)
            {
                resources.Add(new JsonObject
                {
                    ["name"] = t.Plural + "/status",
                    ["singularName"] = "",
                    ["namespaced"] = t.Namespaced,
                    ["kind"] = t.Kind,
                    ["verbs"] = new JsonArray("get", "patch", "update"),
                });
            }
        }
        return new JsonObject
        {
            ["kind"] = "APIResourceList",
            ["apiVersion"] = "v1",
            ["groupVersion"] = group.Length == 0 ? version : group + "/" + version,
            ["resources"] = resources,
        };
    }

    /// <summary>
    /// An OpenAPI v3 document for one group/version: a PATCH operation per resource that declares the
    /// fieldValidation parameter (so kubectl apply validates server-side instead of downloading OpenAPI v2),
    /// and each kind's schema tagged with its GVK (so kubectl explain finds it).
    /// </summary>
    private static JsonObject OpenApiDocument(string group, string version, List<FakeResourceType> types)
    {
        var paths = new JsonObject();
        var schemas = new JsonObject();
        var prefix = group.Length == 0 ? "io.k8s.api.core" : string.Join('.', group.Split('.').Reverse());
        foreach (var t in types.Where(t => t.Group == group && t.Version == version))
        {
            var gvk = new JsonObject { ["group"] = group, ["version"] = version, ["kind"] = t.Kind };
            var basePath = group.Length == 0 ? "/api/" + version : $"/apis/{group}/{version}";
            var itemPath = t.Namespaced ? $"{basePath}/namespaces/{{namespace}}/{t.Plural}/{{name}}" : $"{basePath}/{t.Plural}/{{name}}";
            var pathParams = new JsonArray(new JsonObject { ["name"] = "name", ["in"] = "path", ["required"] = true, ["schema"] = new JsonObject { ["type"] = "string" } });
            if (t.Namespaced) pathParams.Add(new JsonObject { ["name"] = "namespace", ["in"] = "path", ["required"] = true, ["schema"] = new JsonObject { ["type"] = "string" } });
            var schemaName = $"{prefix}.{version}.{t.Kind}";
            paths[itemPath] = new JsonObject
            {
                ["patch"] = new JsonObject
                {
                    ["operationId"] = "patch" + t.Kind,
                    ["x-kubernetes-action"] = "patch",
                    ["x-kubernetes-group-version-kind"] = gvk.DeepClone(),
                    ["parameters"] = new JsonArray(
                        new JsonObject { ["name"] = "fieldValidation", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } },
                        new JsonObject { ["name"] = "fieldManager", ["in"] = "query", ["schema"] = new JsonObject { ["type"] = "string", ["uniqueItems"] = true } }),
                    ["responses"] = new JsonObject
                    {
                        ["200"] = new JsonObject
                        {
                            ["description"] = "OK",
                            ["content"] = new JsonObject { ["application/json"] = new JsonObject { ["schema"] = new JsonObject { ["$ref"] = "#/components/schemas/" + schemaName } } },
                        },
                    },
                },
                ["parameters"] = pathParams,
            };
            var schema = (JsonObject?)t.Schema?.DeepClone() ?? new JsonObject { ["type"] = "object", ["x-kubernetes-preserve-unknown-fields"] = true };
            schema["x-kubernetes-group-version-kind"] = new JsonArray(gvk);
            schemas[schemaName] = schema;
        }
        return new JsonObject
        {
            ["openapi"] = "3.0.0",
            ["info"] = new JsonObject { ["title"] = "Kubernetes", ["version"] = "v1.32.0-fake" },
            ["paths"] = paths,
            ["components"] = new JsonObject { ["schemas"] = schemas },
        };
    }

    private static bool WantsTable(HttpContext ctx) =>
        ctx.Request.Headers.Accept.Any(a => a is not null && a.Contains("as=Table", StringComparison.Ordinal));

    /// <summary>A meta.k8s.io/v1 Table as the API server renders it for CRDs (Name, the printer columns, rows with metadata).</summary>
    public static JsonObject RenderTable(FakeResourceType type, IReadOnlyList<JsonObject> items, JsonObject? listMetadata)
    {
        var columns = type.PrinterColumns.Count > 0
            ? type.PrinterColumns
            : [new FakePrinterColumn("Age", "date", ".metadata.creationTimestamp", "Time since the object was created.")];
        var defs = new JsonArray(new JsonObject
        {
            ["name"] = "Name",
            ["type"] = "string",
            ["format"] = "name",
            ["description"] = "Name must be unique within a namespace.",
            ["priority"] = 0,
        });
        foreach (var c in columns)
        {
            defs.Add(new JsonObject
            {
                ["name"] = c.Name,
                ["type"] = c.Type,
                ["format"] = c.Format ?? "",
                ["description"] = c.Description ?? "",
                ["priority"] = c.Priority,
            });
        }
        var rows = new JsonArray();
        foreach (var item in items)
        {
            var cells = new JsonArray(JsonValue.Create(item["metadata"]?["name"]?.GetValue<string>()));
            foreach (var c in columns) cells.Add(Cell(c, item));
            rows.Add(new JsonObject
            {
                ["cells"] = cells,
                ["object"] = new JsonObject
                {
                    ["kind"] = "PartialObjectMetadata",
                    ["apiVersion"] = "meta.k8s.io/v1",
                    ["metadata"] = item["metadata"]?.DeepClone(),
                },
            });
        }
        var meta = new JsonObject();
        if (listMetadata?["resourceVersion"] is { } rv) meta["resourceVersion"] = rv.DeepClone();
        if (listMetadata?["continue"] is { } cont) meta["continue"] = cont.DeepClone();
        return new JsonObject
        {
            ["kind"] = "Table",
            ["apiVersion"] = "meta.k8s.io/v1",
            ["metadata"] = meta,
            ["columnDefinitions"] = defs,
            ["rows"] = rows,
        };
    }

    /// <summary>Like the API server: the first JSONPath result; dates as a human-readable age.</summary>
    private static JsonNode? Cell(FakePrinterColumn column, JsonObject item)
    {
        var results = JsonPath(item, column.JsonPath);
        if (results.Count == 0 || results[0] is null) return null;
        var value = results[0]!;
        if (column.Type == "date" && value.GetValueKind() == JsonValueKind.String
            && DateTimeOffset.TryParse(value.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when))
        {
            return HumanDuration(DateTimeOffset.UtcNow - when);
        }
        if (column.Type == "string" && value.GetValueKind() != JsonValueKind.String) return value.ToJsonString();
        return value.DeepClone();
    }

    /// <summary>The JSONPath subset printer columns use: .field, [n], [*], [?(@.a.b=="x")] and !=.</summary>
    public static List<JsonNode?> JsonPath(JsonNode root, string path)
    {
        var current = new List<JsonNode?> { root };
        var i = 0;
        path = path.Trim();
        if (path.StartsWith('{') && path.EndsWith('}')) path = path[1..^1];
        while (i < path.Length)
        {
            if (path[i] == '.')
            {
                var start = ++i;
                while (i < path.Length && path[i] != '.' && path[i] != '[') i++;
                var name = path[start..i];
                if (name.Length == 0) continue;
                current = current.Select(n => n is JsonObject o ? o[name] : null).Where(n => n is not null).ToList();
            }
            else if (path[i] == '[')
            {
                var close = FindClose(path, i);
                var inner = path[(i + 1)..close];
                i = close + 1;
                if (inner == "*")
                {
                    current = current.SelectMany(n => n is JsonArray a ? a.AsEnumerable() : n is JsonObject o ? o.Select(p => p.Value) : []).ToList();
                }
                else if (inner.StartsWith("?(", StringComparison.Ordinal) && inner.EndsWith(')'))
                {
                    var expr = inner[2..^1];
                    var negate = expr.Contains("!=", StringComparison.Ordinal);
                    var parts = expr.Split(negate ? "!=" : "==", 2, StringSplitOptions.TrimEntries);
                    var lhs = parts[0].StartsWith("@", StringComparison.Ordinal) ? parts[0][1..] : parts[0];
                    var literal = parts.Length > 1 ? parts[1].Trim('"', '\'') : null;
                    current = current.SelectMany(n => n is JsonArray a ? a.AsEnumerable() : [])
                        .Where(el =>
                        {
                            if (el is null) return false;
                            var found = JsonPath(el, lhs);
                            var v = found.Count > 0 && found[0] is JsonValue jv ? (jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : jv.ToJsonString()) : null;
                            return literal is null ? v is not null : negate ? v != literal : v == literal;
                        }).ToList();
                }
                else if (int.TryParse(inner, NumberStyles.Integer, CultureInfo.InvariantCulture, out var index))
                {
                    current = current.Select(n => n is JsonArray a && index >= 0 && index < a.Count ? a[index] : null).Where(n => n is not null).ToList();
                }
                else
                {
                    var key = inner.Trim('\'', '"');
                    current = current.Select(n => n is JsonObject o ? o[key] : null).Where(n => n is not null).ToList();
                }
            }
            else
            {
                i++;
            }
        }
        return current;
    }

    private static int FindClose(string path, int open)
    {
        var depth = 0;
        var quote = '\0';
        for (var i = open; i < path.Length; i++)
        {
            var c = path[i];
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                continue;
            }
            if (c is '"' or '\'') quote = c;
            else if (c == '[') depth++;
            else if (c == ']' && --depth == 0) return i;
        }
        throw new FormatException($"Unbalanced brackets in JSONPath '{path}'.");
    }

    /// <summary>apimachinery's duration.HumanDuration ("5m", "3h12m", "2d").</summary>
    public static string HumanDuration(TimeSpan d)
    {
        if (d < TimeSpan.FromSeconds(-1)) return "<invalid>";
        if (d < TimeSpan.Zero) return "0s";
        var seconds = (long)d.TotalSeconds;
        if (seconds < 120) return $"{seconds}s";
        var minutes = (long)d.TotalMinutes;
        if (minutes < 10) return seconds % 60 == 0 ? $"{minutes}m" : $"{minutes}m{seconds % 60}s";
        if (minutes < 180) return $"{minutes}m";
        var hours = (long)d.TotalHours;
        if (hours < 8) return minutes % 60 == 0 ? $"{hours}h" : $"{hours}h{minutes % 60}m";
        if (hours < 48) return $"{hours}h";
        if (hours < 24 * 8) return hours % 24 == 0 ? $"{hours / 24}d" : $"{hours / 24}d{hours % 24}h";
        if (hours < 24 * 365 * 2) return $"{hours / 24}d";
        if (hours < 24 * 365 * 8) return $"{hours / 24 / 365}y{hours / 24 % 365}d";
        return $"{hours / 24 / 365}y";
    }
}
