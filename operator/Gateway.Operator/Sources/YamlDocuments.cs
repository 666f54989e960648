using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Gateway.Operator.Sources;

/// <summary>
/// Reads multi-document YAML into JSON nodes with YAML 1.2 core-schema scalars (plain true/false/null/
/// numbers are typed; quoted scalars stay strings), so resources bind with the same System.Text.Json
/// contracts the Kubernetes source uses.
/// </summary>
public static class YamlDocuments
{
    public static List<JsonObject> Parse(string yaml, string origin)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new InvalidDataException($"{origin}: invalid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet reports some truncated documents (e.g. an unclosed flow sequence) this way.
            throw new InvalidDataException($"{origin}: invalid YAML (the document ends inside an unclosed structure).", e);
        }
        var result = new List<JsonObject>();
        foreach (var doc in stream.Documents)
        {
            if (doc.RootNode is YamlScalarNode s && string.IsNullOrEmpty(s.Value)) continue;
            if (ToJson(doc.RootNode) is JsonObject o) result.Add(o);
            else throw new InvalidDataException($"{origin}: a document is not a mapping.");
        }
        return result;
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => ToObject(m),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode s => ToScalar(s),
        _ => null,
    };

    private static JsonObject ToObject(YamlMappingNode m)
    {
        var o = new JsonObject();
        foreach (var (k, v) in m.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? throw new InvalidDataException("Only scalar mapping keys are supported.");
            o[key] = ToJson(v);
        }
        return o;
    }

    private static JsonNode? ToScalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style != ScalarStyle.Plain) return JsonValue.Create(v);
        switch (v)
        {
            case "" or "~" or "null" or "Null" or "NULL": return null;
            case "true" or "True" or "TRUE": return JsonValue.Create(true);
            case "false" or "False" or "FALSE": return JsonValue.Create(false);
        }
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (decimal.TryParse(v, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent, CultureInfo.InvariantCulture, out var d)) return JsonValue.Create(d);
        return JsonValue.Create(v);
    }
}
