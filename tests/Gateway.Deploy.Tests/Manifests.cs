using System.Text.Json.Nodes;
using Gateway.Testing.Kubernetes;

namespace Gateway.Deploy.Tests;

/// <summary>A rendered set of Kubernetes objects (helm template or kubectl kustomize output) with lookups.</summary>
public sealed class Manifests(IReadOnlyList<JsonObject> objects)
{
    public IReadOnlyList<JsonObject> Objects { get; } = objects;

    public static Manifests Parse(string yaml) => new(FakeCrdSchema.ParseYaml(yaml));

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => Kind(o) == kind);

    public JsonObject? Find(string kind, string name) => OfKind(kind).SingleOrDefault(o => Name(o) == name);

    public JsonObject Get(string kind, string name) =>
        Find(kind, name) ?? throw new Xunit.Sdk.XunitException($"No {kind} '{name}' in the rendered objects: {string.Join(", ", Objects.Select(o => Kind(o) + "/" + Name(o)))}");

    public static string Kind(JsonNode o) => o["kind"]!.GetValue<string>();
    public static string Name(JsonNode o) => o["metadata"]!["name"]!.GetValue<string>();
    public static string? Namespace(JsonNode o) => o["metadata"]?["namespace"]?.GetValue<string>();

    public static JsonObject PodSpec(JsonNode deployment) => deployment["spec"]!["template"]!["spec"]!.AsObject();

    public static JsonObject Container(JsonNode deployment) => Assert.Single(PodSpec(deployment)["containers"]!.AsArray())!.AsObject();

    public static IEnumerable<string> Strings(JsonNode? node) => (node as JsonArray ?? []).Select(n => n!.GetValue<string>());

    /// <summary>The container's env entries by name.</summary>
    public static Dictionary<string, JsonObject> Env(JsonNode container) =>
        (container["env"] as JsonArray ?? []).ToDictionary(e => e!["name"]!.GetValue<string>(), e => e!.AsObject(), StringComparer.Ordinal);

    /// <summary>(apiGroup, resource, verb) triples granted by the rules of a Role or ClusterRole.</summary>
    public static HashSet<(string Group, string Resource, string Verb)> Grants(IEnumerable<JsonNode> roles)
    {
        var grants = new HashSet<(string, string, string)>();
        foreach (var role in roles)
        foreach (var rule in role["rules"]!.AsArray())
        foreach (var g in Strings(rule!["apiGroups"]))
        foreach (var r in Strings(rule["resources"]))
        foreach (var v in Strings(rule["verbs"]))
        {
            grants.Add((g, r, v));
        }
        return grants;
    }
}
