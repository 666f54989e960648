using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Operator.Crds;

namespace Gateway.Operator.Accounts;

/// <summary>
/// Writes imported accounts as YAML: each account is a Secret and an UpstreamAccount document, preceded by a
/// comment naming the source file (never a token). Uses the CRD generator's emitter, so output is deterministic.
/// </summary>
public static class AccountManifestWriter
{
    /// <summary>The documents of one account (for one file per account).</summary>
    public static string Write(AccountManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var a = manifest.Account;
        var header = $"{a.Type} account {a.Identity}, imported from {Path.GetFileName(a.SourceFile)} by `Gateway.Operator import-accounts`.\n" +
                     "The Secret holds OAuth tokens: keep this file out of plain-text Git (seal or encrypt it).";
        return YamlEmitter.Write(ToYaml(manifest.Secret), header) + "---\n" + YamlEmitter.Write(ToYaml(manifest.UpstreamAccount));
    }

    /// <summary>Every account as one multi-document stream (for stdout and <c>kubectl apply -f -</c>).</summary>
    public static string WriteAll(IEnumerable<AccountManifest> manifests)
    {
        ArgumentNullException.ThrowIfNull(manifests);
        var sb = new StringBuilder();
        foreach (var m in manifests)
        {
            if (sb.Length > 0) sb.Append("---\n");
            sb.Append(Write(m));
        }
        return sb.ToString();
    }

    /// <summary>The file name of an account's manifest under --out.</summary>
    public static string FileName(AccountManifest manifest) => manifest is null ? throw new ArgumentNullException(nameof(manifest)) : manifest.Name + ".yaml";

    private static YamlMap ToYaml(JsonObject o)
    {
        var map = new YamlMap();
        foreach (var (k, v) in o)
        {
            if (v is not null) map.Add(k, ToYaml(v));
        }
        return map;
    }

    private static object ToYaml(JsonNode node) => node switch
    {
        JsonObject o => ToYaml(o),
        JsonArray a => a.Where(x => x is not null).Select(x => ToYaml(x!)).ToList(),
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>(),
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Number when v.TryGetValue<long>(out var l) => l,
            JsonValueKind.Number => decimal.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
            var kind => throw new NotSupportedException($"Cannot write a JSON {kind} as YAML."),
        },
        _ => throw new NotSupportedException($"Cannot write {node.GetType().Name} as YAML."),
    };
}
