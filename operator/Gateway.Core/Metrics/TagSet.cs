using System.Globalization;
using System.Text;

namespace Gateway.Core.Metrics;

/// <summary>The tag values identifying one series, sorted by key, with the label text rendered once.</summary>
internal sealed class TagSet
{
    public static readonly TagSet Empty = new([], []);

    private TagSet(string[] keys, object?[] values)
    {
        Keys = keys;
        Values = values;
        var hash = 0;
        for (var i = 0; i < keys.Length; i++) hash += TagHash(keys[i], values[i]);
        Hash = hash;
        Labels = Render(keys, values);
    }

    public string[] Keys { get; }
    public object?[] Values { get; }
    public int Hash { get; }

    /// <summary>Rendered labels without braces, e.g. <c>a="1",b="x"</c>; empty when there are no tags.</summary>
    public string Labels { get; }

    /// <summary>Order-independent so a lookup needs neither sorting nor a copy of the caller's tags.</summary>
    public static int TagHash(string key, object? value) =>
        HashCode.Combine(StringComparer.Ordinal.GetHashCode(key), value?.GetHashCode() ?? 0);

    public static TagSet Create(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.IsEmpty) return Empty;
        // Last value wins for a repeated key, as in OpenTelemetry.
        var map = new SortedDictionary<string, object?>(StringComparer.Ordinal);
        foreach (var t in tags) map[t.Key] = t.Value;
        return new TagSet([.. map.Keys], [.. map.Values]);
    }

    public static TagSet Single(string key, object? value) => new([key], [value]);

    public bool Matches(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length != Keys.Length) return false;
        foreach (var t in tags)
        {
            var i = Array.IndexOf(Keys, t.Key);
            if (i < 0 || !Equals(Values[i], t.Value)) return false;
        }
        return true;
    }

    private static string Render(string[] keys, object?[] values)
    {
        if (keys.Length == 0) return "";
        var sb = new StringBuilder();
        for (var i = 0; i < keys.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(PrometheusText.SanitizeLabelName(keys[i])).Append("=\"");
            PrometheusText.AppendEscapedLabelValue(sb, FormatValue(values[i]));
            sb.Append('"');
        }
        return sb.ToString();
    }

    private static string FormatValue(object? value) => value switch
    {
        null => "",
        string s => s,
        bool b => b ? "true" : "false",
        double d => PrometheusText.FormatDouble(d),
        float f => PrometheusText.FormatDouble(f),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}

/// <summary>Compares stored tag sets with the span a measurement callback receives, without allocating.</summary>
internal sealed class TagSetComparer : IEqualityComparer<TagSet>, IAlternateEqualityComparer<ReadOnlySpan<KeyValuePair<string, object?>>, TagSet>
{
    public static readonly TagSetComparer Instance = new();

    public bool Equals(TagSet? x, TagSet? y)
    {
        if (ReferenceEquals(x, y)) return true;
        if (x is null || y is null || x.Hash != y.Hash || x.Keys.Length != y.Keys.Length) return false;
        for (var i = 0; i < x.Keys.Length; i++)
        {
            if (!string.Equals(x.Keys[i], y.Keys[i], StringComparison.Ordinal) || !Equals(x.Values[i], y.Values[i])) return false;
        }
        return true;
    }

    public int GetHashCode(TagSet obj) => obj.Hash;

    public bool Equals(ReadOnlySpan<KeyValuePair<string, object?>> alternate, TagSet other) => other.Matches(alternate);

    public int GetHashCode(ReadOnlySpan<KeyValuePair<string, object?>> alternate)
    {
        var hash = 0;
        foreach (var t in alternate) hash += TagSet.TagHash(t.Key, t.Value);
        return hash;
    }

    public TagSet Create(ReadOnlySpan<KeyValuePair<string, object?>> alternate) => TagSet.Create(alternate);
}
