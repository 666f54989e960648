namespace Gateway.Testing.Kubernetes;

/// <summary>
/// Parses and evaluates Kubernetes label selectors in their string form
/// (<c>a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a</c>) the way the API server does for list and watch.
/// </summary>
public sealed class FakeLabelSelector
{
    private readonly List<Func<IReadOnlyDictionary<string, string>, bool>> _requirements = [];

    private FakeLabelSelector() { }

    public static FakeLabelSelector Everything { get; } = new();

    /// <summary>True when the selector selects everything (no requirements).</summary>
    public bool IsEmpty => _requirements.Count == 0;

    public static FakeLabelSelector Parse(string? selector)
    {
        var result = new FakeLabelSelector();
        if (string.IsNullOrWhiteSpace(selector)) return result;
        foreach (var raw in SplitTopLevel(selector))
        {
            var part = raw.Trim();
            if (part.Length == 0) continue;
            result._requirements.Add(ParseRequirement(part));
        }
        return result;
    }

    public bool Matches(IReadOnlyDictionary<string, string> labels)
    {
        foreach (var r in _requirements)
        {
            if (!r(labels)) return false;
        }
        return true;
    }

    // Commas inside "in (a,b)" do not separate requirements.
    private static IEnumerable<string> SplitTopLevel(string s)
    {
        var depth = 0;
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '(') depth++;
            else if (s[i] == ')') depth--;
            else if (s[i] == ',' && depth == 0)
            {
                yield return s[start..i];
                start = i + 1;
            }
        }
        yield return s[start..];
    }

    private static Func<IReadOnlyDictionary<string, string>, bool> ParseRequirement(string part)
    {
        if (part.StartsWith('!'))
        {
            var key = part[1..].Trim();
            return labels => !labels.ContainsKey(key);
        }
        var notEq = part.IndexOf("!=", StringComparison.Ordinal);
        if (notEq > 0)
        {
            var key = part[..notEq].Trim();
            var value = part[(notEq + 2)..].Trim();
            return labels => !labels.TryGetValue(key, out var v) || v != value;
        }
        var eq = part.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0)
        {
            var key = part[..eq].Trim();
            var value = part[(eq + 1)..].TrimStart('=').Trim();
            return labels => labels.TryGetValue(key, out var v) && v == value;
        }
        var tokens = part.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (tokens.Length == 2)
        {
            var key = tokens[0];
            var rest = tokens[1];
            var notIn = rest.StartsWith("notin", StringComparison.Ordinal);
            var isIn = !notIn && rest.StartsWith("in", StringComparison.Ordinal);
            if (notIn || isIn)
            {
                var open = rest.IndexOf('(', StringComparison.Ordinal);
                var close = rest.LastIndexOf(')');
                if (open < 0 || close < open) throw new FormatException($"invalid label selector requirement '{part}'");
                var values = rest[(open + 1)..close].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);
                if (isIn) return labels => labels.TryGetValue(key, out var v) && values.Contains(v);
                return labels => !labels.TryGetValue(key, out var v) || !values.Contains(v);
            }
            throw new FormatException($"invalid label selector requirement '{part}'");
        }
        var existsKey = part.Trim();
        return labels => labels.ContainsKey(existsKey);
    }
}
