using System.Text;
using Microsoft.AspNetCore.Html;

namespace Gateway.Portal.Charts;

/// <summary>
/// Horizontal bars with their labels and values written out (e.g. spend by model): readable at 390 px, the
/// text is real text (selectable, read by screen readers in order), no script.
/// </summary>
public static class HorizontalBarChart
{
    private const double Width = 340, RowHeight = 36, BarHeight = 12, Pad = 4;

    public static IHtmlContent Render(string id, string title, string description, IReadOnlyList<ChartPoint> points)
    {
        ArgumentNullException.ThrowIfNull(points);
        var height = Math.Max(1, points.Count) * RowHeight + Pad;
        var sb = new StringBuilder(2048);
        SvgText.Open(sb, id, title, description, Width, height, "hbar-chart");
        var max = 0d;
        foreach (var p in points) max = Math.Max(max, p.Value);
        for (var i = 0; i < points.Count; i++)
        {
            var p = points[i];
            var y = Pad + i * RowHeight;
            var w = max > 0 ? (Width - 2 * Pad) * p.Value / max : 0;
            if (p.Value > 0) w = Math.Max(w, 2);
            // Label left and value right on the line above the bar, so long model names never overlap the bar.
            sb.Append("<g class=\"row\"><title>").Text(p.Label).Append(": ").Text(p.ValueText).Append("</title>");
            sb.Append("<text class=\"label\" x=\"").Num(Pad).Append("\" y=\"").Num(y + 12).Append("\">").Text(p.Label).Append("</text>");
            sb.Append("<text class=\"value\" x=\"").Num(Width - Pad).Append("\" y=\"").Num(y + 12).Append("\" text-anchor=\"end\">").Text(p.ValueText).Append("</text>");
            sb.Append("<rect x=\"").Num(Pad).Append("\" y=\"").Num(y + 17).Append("\" width=\"").Num(w).Append("\" height=\"").Num(BarHeight).Append("\" rx=\"2\"/></g>");
        }
        sb.Append("</svg>");
        return new HtmlString(sb.ToString());
    }
}
