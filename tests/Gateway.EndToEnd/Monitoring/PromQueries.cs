using System.Text.Json;
using YamlDotNet.RepresentationModel;

namespace Gateway.EndToEnd.Monitoring;

/// <summary>One alerting rule of the rules file.</summary>
public sealed record AlertRule(string Alert, string Expr, string For, IReadOnlyDictionary<string, string> Labels, IReadOnlyDictionary<string, string> Annotations);

/// <summary>Reads the PromQL of the rules file and the dashboard.</summary>
public static class PromQueries
{
    public static IReadOnlyList<AlertRule> Rules(string path)
    {
        var yaml = new YamlStream();
        using (var reader = new StreamReader(path)) yaml.Load(reader);
        var root = (YamlMappingNode)yaml.Documents[0].RootNode;
        var rules = new List<AlertRule>();
        foreach (var group in ((YamlSequenceNode)root["groups"]).Cast<YamlMappingNode>())
        {
            foreach (var rule in ((YamlSequenceNode)group["rules"]).Cast<YamlMappingNode>())
            {
                string Scalar(string key) => rule.Children.TryGetValue(key, out var v) ? ((YamlScalarNode)v).Value ?? "" : "";
                Dictionary<string, string> Map(string key) => rule.Children.TryGetValue(key, out var v)
                    ? ((YamlMappingNode)v).Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value!, p => ((YamlScalarNode)p.Value).Value ?? "", StringComparer.Ordinal)
                    : new Dictionary<string, string>(StringComparer.Ordinal);
                rules.Add(new AlertRule(Scalar("alert"), Scalar("expr"), Scalar("for"), Map("labels"), Map("annotations")));
            }
        }
        return rules;
    }

    /// <summary>Every panel with queries (rows' nested panels included): title and PromQL expressions.</summary>
    public static IEnumerable<(string Title, IReadOnlyList<string> Exprs)> DashboardPanels(JsonElement dashboard)
    {
        foreach (var panel in dashboard.GetProperty("panels").EnumerateArray())
        {
            if (panel.TryGetProperty("panels", out var nested))
            {
                foreach (var inner in nested.EnumerateArray()) yield return Panel(inner);
            }
            if (panel.GetProperty("type").GetString() != "row") yield return Panel(panel);
        }
    }

    private static (string, IReadOnlyList<string>) Panel(JsonElement p) =>
        (p.GetProperty("title").GetString() ?? "",
         p.TryGetProperty("targets", out var t) ? t.EnumerateArray().Select(x => x.GetProperty("expr").GetString() ?? "").ToList() : []);

    /// <summary>Grafana's variables replaced by values a plain Prometheus query accepts.</summary>
    public static string ForPrometheus(string expr) => expr
        .Replace("$__rate_interval", "1m", StringComparison.Ordinal)
        .Replace("$__interval", "15s", StringComparison.Ordinal)
        .Replace("$__range", "5m", StringComparison.Ordinal);
}
