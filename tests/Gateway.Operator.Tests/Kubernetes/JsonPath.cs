using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// The subset of Kubernetes JSONPath that printer columns use: <c>.field</c>, <c>[*]</c>, <c>[N]</c> and
/// <c>[?(@.field=="value")]</c>. Returns every match (kubectl joins several with commas).
/// </summary>
public static partial class JsonPath
{
    public static IReadOnlyList<JsonNode?> Evaluate(JsonNode root, string path)
    {
        IEnumerable<JsonNode?> current = [root];
        var pos = 0;
        while (pos < path.Length)
        {
            if (path[pos] == '.')
            {
                var m = FieldRegex().Match(path, pos + 1);
                if (!m.Success || m.Index != pos + 1) throw new FormatException($"Unsupported JSONPath '{path}' at {pos}.");
                var field = m.Value;
                current = current.Select(n => n is JsonObject o ? o[field] : null).Where(n => n is not null).ToList();
                pos = m.Index + m.Length;
            }
            else if (path[pos] == '[')
            {
                var end = path.IndexOf(']', pos);
                var inner = path[(pos + 1)..end];
                if (inner.StartsWith("?(", StringComparison.Ordinal))
                {
                    end = path.IndexOf(")]", pos, StringComparison.Ordinal) + 1;
                    var f = FilterRegex().Match(path[(pos + 1)..end]);
                    if (!f.Success) throw new FormatException($"Unsupported JSONPath filter in '{path}'.");
                    var (field, value) = (f.Groups[1].Value, f.Groups[2].Value);
                    current = current.SelectMany(n => n as JsonArray ?? [])
                        .Where(n => n is JsonObject o && o[field] is JsonValue v && v.ToString() == value).ToList();
                }
                else if (inner == "*")
                {
                    current = current.SelectMany(n => n as JsonArray ?? []).ToList();
                }
                else
                {
                    var i = int.Parse(inner, System.Globalization.CultureInfo.InvariantCulture);
                    current = current.Select(n => n is JsonArray a && i < a.Count ? a[i] : null).Where(n => n is not null).ToList();
                }
                pos = end + 1;
            }
            else
            {
                throw new FormatException($"Unsupported JSONPath '{path}' at {pos}.");
            }
        }
        return current.ToList();
    }

    [GeneratedRegex(@"[A-Za-z0-9_\-]+")]
    private static partial Regex FieldRegex();

    [GeneratedRegex("""^\?\(@\.([A-Za-z0-9_]+)==["']([^"']*)["']\)$""")]
    private static partial Regex FilterRegex();
}
