using System.Globalization;
using System.Text;

namespace Gateway.Core.Tests.Metrics;

/// <summary>A strict reader of the text format 0.0.4, so tests check what a scraper would see.</summary>
internal sealed class Exposition
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public Dictionary<string, string> Types { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, string> Help { get; } = new(StringComparer.Ordinal);
    public List<Sample> Samples { get; } = [];

    public static Exposition Parse(string text)
    {
        var e = new Exposition();
        Assert.EndsWith("\n", text);
        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0) continue;
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var rest = line[7..];
                var sp = rest.IndexOf(' ');
                e.Help.Add(rest[..sp], UnescapeHelp(rest[(sp + 1)..]));
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line[7..].Split(' ');
                Assert.Equal(2, parts.Length);
                e.Types.Add(parts[0], parts[1]);
                continue;
            }
            Assert.False(line.StartsWith('#'), line);
            e.Samples.Add(ParseSample(line));
        }
        return e;
    }

    private static Sample ParseSample(string line)
    {
        var i = 0;
        while (i < line.Length && line[i] != '{' && line[i] != ' ') i++;
        var name = line[..i];
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                var eq = line.IndexOf('=', i);
                var label = line[i..eq];
                Assert.Equal('"', line[eq + 1]);
                i = eq + 2;
                var value = new StringBuilder();
                while (line[i] != '"')
                {
                    if (line[i] == '\\')
                    {
                        i++;
                        value.Append(line[i] switch { 'n' => '\n', '\\' => '\\', '"' => '"', _ => throw new FormatException("bad escape in " + line) });
                    }
                    else value.Append(line[i]);
                    i++;
                }
                i++;
                labels.Add(label, value.ToString());
                if (line[i] == ',') i++;
            }
            i++;
        }
        Assert.Equal(' ', line[i]);
        var text = line[(i + 1)..];
        var v = text switch { "+Inf" => double.PositiveInfinity, "-Inf" => double.NegativeInfinity, "NaN" => double.NaN, _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture) };
        return new Sample(name, labels, v);
    }

    private static string UnescapeHelp(string s) => s.Replace(@"\n", "\n", StringComparison.Ordinal).Replace(@"\\", @"\", StringComparison.Ordinal);

    public IEnumerable<Sample> Named(string name) => Samples.Where(s => s.Name == name);

    public double Value(string name, params (string Key, string Value)[] labels)
    {
        var matches = Samples.Where(s => s.Name == name && s.Labels.Count == labels.Length && labels.All(l => s.Labels.TryGetValue(l.Key, out var v) && v == l.Value)).ToList();
        Assert.True(matches.Count == 1, $"expected one sample {name}{{{string.Join(",", labels.Select(l => l.Key + "=" + l.Value))}}}, found {matches.Count}");
        return matches[0].Value;
    }
}
