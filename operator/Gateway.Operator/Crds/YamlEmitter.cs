using System.Globalization;
using System.Text;

namespace Gateway.Operator.Crds;

/// <summary>An ordered YAML mapping: keys are written in insertion order, which keeps output stable.</summary>
internal sealed class YamlMap : List<KeyValuePair<string, object>>
{
    public void Add(string key, object value) => Add(new KeyValuePair<string, object>(key, value));

    public object? this[string key]
    {
        get
        {
            foreach (var pair in this)
            {
                if (pair.Key == key) return pair.Value;
            }
            return null;
        }
    }
}

/// <summary>
/// Writes <see cref="YamlMap"/>, lists and scalars as block YAML in the layout controller-gen uses
/// (list items not indented under their key). Strings are plain when YAML would read them back as the
/// same string and double-quoted otherwise, so the output is deterministic and round-trips.
/// </summary>
internal static class YamlEmitter
{
    public static string Write(YamlMap document, string? headerComment = null)
    {
        var sb = new StringBuilder();
        if (headerComment is not null)
        {
            foreach (var line in headerComment.Split('\n')) sb.Append("# ").Append(line).Append('\n');
        }
        WriteMap(sb, document, 0);
        return sb.ToString();
    }

    private static void WriteMap(StringBuilder sb, YamlMap map, int indent)
    {
        foreach (var (key, value) in map)
        {
            sb.Append(' ', indent).Append(Scalar(key)).Append(':');
            WriteValue(sb, value, indent);
        }
    }

    // Called after "key:" has been written.
    private static void WriteValue(StringBuilder sb, object value, int indent)
    {
        switch (value)
        {
            case YamlMap { Count: 0 }:
                sb.Append(" {}\n");
                break;
            case YamlMap m:
                sb.Append('\n');
                WriteMap(sb, m, indent + 2);
                break;
            case System.Collections.IList { Count: 0 }:
                sb.Append(" []\n");
                break;
            case System.Collections.IList list:
                sb.Append('\n');
                foreach (var item in list) WriteListItem(sb, item!, indent);
                break;
            default:
                sb.Append(' ').Append(Scalar(value)).Append('\n');
                break;
        }
    }

    private static void WriteListItem(StringBuilder sb, object item, int indent)
    {
        if (item is YamlMap { Count: > 0 } m)
        {
            // Write the map two deeper, then turn the first line's indentation into the "- " marker.
            var inner = new StringBuilder();
            WriteMap(inner, m, indent + 2);
            inner[indent] = '-';
            sb.Append(inner);
            return;
        }
        if (item is System.Collections.IList { Count: > 0 })
        {
            throw new NotSupportedException("Nested lists are not used in CRDs.");
        }
        sb.Append(' ', indent).Append("- ");
        sb.Append(item switch
        {
            YamlMap => "{}",
            System.Collections.IList => "[]",
            _ => Scalar(item),
        });
        sb.Append('\n');
    }

    public static string Scalar(object value) => value switch
    {
        string s => String(s),
        bool b => b ? "true" : "false",
        int i => i.ToString(CultureInfo.InvariantCulture),
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Number(d),
        decimal m => m.ToString(CultureInfo.InvariantCulture),
        _ => throw new NotSupportedException($"Cannot write {value.GetType()} as a YAML scalar."),
    };

    private static string Number(double d)
    {
        if (!double.IsFinite(d)) throw new NotSupportedException("Infinite or NaN numbers are not written to CRDs.");
        return d == Math.Floor(d) && Math.Abs(d) < 1e15 ? ((long)d).ToString(CultureInfo.InvariantCulture) : d.ToString("R", CultureInfo.InvariantCulture);
    }

    private static readonly HashSet<string> s_reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    };

    private static string String(string s)
    {
        if (IsPlainSafe(s)) return s;
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\n': sb.Append(@"\n"); break;
                case '\t': sb.Append(@"\t"); break;
                case < ' ': sb.Append(@"\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }

    private static bool IsPlainSafe(string s)
    {
        if (s.Length == 0 || s_reserved.Contains(s)) return false;
        if (char.IsWhiteSpace(s[0]) || char.IsWhiteSpace(s[^1])) return false;
        // Indicator characters, and anything that could read as a number, date or other type.
        if ("-?:,[]{}#&*!|>'\"%@`.+".Contains(s[0]) || char.IsAsciiDigit(s[0])) return false;
        if (s[^1] == ':') return false;
        if (s.Contains(": ", StringComparison.Ordinal) || s.Contains(" #", StringComparison.Ordinal)) return false;
        foreach (var c in s)
        {
            if (char.IsControl(c)) return false;
        }
        return true;
    }
}
