using System.Globalization;
using System.Text;

namespace Gateway.Core.Metrics;

/// <summary>Pieces of the Prometheus text exposition format 0.0.4.</summary>
public static class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Replaces characters outside <c>[a-zA-Z0-9_:]</c> with '_' and keeps the first character legal.</summary>
    public static string SanitizeMetricName(string name) => Sanitize(name, allowColon: true);

    /// <summary>Replaces characters outside <c>[a-zA-Z0-9_]</c> with '_' (e.g. OpenTelemetry's dotted tag names).</summary>
    public static string SanitizeLabelName(string name) => Sanitize(name, allowColon: false);

    private static string Sanitize(string name, bool allowColon)
    {
        if (string.IsNullOrEmpty(name)) return "_";
        var ok = !char.IsAsciiDigit(name[0]);
        foreach (var c in name) ok &= IsNameChar(c, allowColon);
        if (ok) return name;
        var sb = new StringBuilder(name.Length + 1);
        if (char.IsAsciiDigit(name[0])) sb.Append('_');
        foreach (var c in name) sb.Append(IsNameChar(c, allowColon) ? c : '_');
        return sb.ToString();
    }

    private static bool IsNameChar(char c, bool allowColon) => char.IsAsciiLetterOrDigit(c) || c == '_' || (allowColon && c == ':');

    /// <summary>Label values escape backslash, double quote and line feed.</summary>
    public static void AppendEscapedLabelValue(StringBuilder sb, string value)
    {
        foreach (var c in value)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\n': sb.Append(@"\n"); break;
                default: sb.Append(c); break;
            }
        }
    }

    /// <summary>HELP text escapes backslash and line feed only.</summary>
    public static void AppendEscapedHelp(StringBuilder sb, string help)
    {
        foreach (var c in help)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '\n': sb.Append(@"\n"); break;
                default: sb.Append(c); break;
            }
        }
    }

    /// <summary>Go-parsable float: shortest round-trip form, +Inf, -Inf, NaN.</summary>
    public static string FormatDouble(double value)
    {
        if (double.IsPositiveInfinity(value)) return "+Inf";
        if (double.IsNegativeInfinity(value)) return "-Inf";
        if (double.IsNaN(value)) return "NaN";
        return value.ToString("R", CultureInfo.InvariantCulture);
    }

    /// <summary>Writes the <c># HELP</c> and <c># TYPE</c> lines of a family.</summary>
    public static void AppendHeader(StringBuilder sb, string name, string type, string? help)
    {
        sb.Append("# HELP ").Append(name).Append(' ');
        AppendEscapedHelp(sb, string.IsNullOrEmpty(help) ? name : help);
        sb.Append('\n');
        sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    /// <summary>Writes one sample line; <paramref name="labels"/> is the rendered label list without braces.</summary>
    public static void AppendSample(StringBuilder sb, string name, string labels, string value)
    {
        sb.Append(name);
        if (labels.Length > 0) sb.Append('{').Append(labels).Append('}');
        sb.Append(' ').Append(value).Append('\n');
    }
}
