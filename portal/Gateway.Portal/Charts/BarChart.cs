using System.Text;
using Microsoft.AspNetCore.Html;

namespace Gateway.Portal.Charts;

/// <summary>
/// A vertical bar chart (e.g. spend per day) as inline SVG, rendered on the server: no script, scales to the
/// container's width through its viewBox, every bar has a tooltip title, and the whole chart a title and a
/// description naming its maximum and total for screen-reader users.
/// </summary>
public static class BarChart
{
    private const double Width = 360, Height = 180, Left = 4, Right = 4, Top = 22, Bottom = 24;

    /// <param name="id">Unique in the page (ids of the title and description).</param>
    /// <param name="labelEvery">Label every n-th bar on the axis (the first and last always).</param>
    public static IHtmlContent Render(string id, string title, string description, IReadOnlyList<ChartPoint> points, int labelEvery = 7)
    {
        ArgumentNullException.ThrowIfNull(points);
        var sb = new StringBuilder(4096);
        SvgText.Open(sb, id, title, description, Width, Height, "bar-chart");
        var max = 0d;
        foreach (var p in points) max = Math.Max(max, p.Value);
        var plotWidth = Width - Left - Right;
        var plotHeight = Height - Top - Bottom;
        var baseline = Top + plotHeight;
        sb.Append("<line class=\"axis\" x1=\"").Num(Left).Append("\" y1=\"").Num(baseline).Append("\" x2=\"").Num(Width - Right).Append("\" y2=\"").Num(baseline).Append("\"/>");
        if (points.Count > 0)
        {
            var maxText = "";
            foreach (var p in points) if (p.Value == max) { maxText = p.ValueText; break; }
            // The scale: the largest value, written at the top left.
            sb.Append("<text class=\"scale\" x=\"").Num(Left).Append("\" y=\"14\">").Text(maxText).Append("</text>");
            var slot = plotWidth / points.Count;
            var barWidth = Math.Max(1, slot * 0.72);
            for (var i = 0; i < points.Count; i++)
            {
                var p = points[i];
                var h = max > 0 ? plotHeight * p.Value / max : 0;
                if (p.Value > 0) h = Math.Max(h, 1); // a non-zero day stays visible
                var x = Left + i * slot + (slot - barWidth) / 2;
                sb.Append("<g class=\"bar\"><title>").Text(p.Label).Append(": ").Text(p.ValueText).Append("</title>");
                sb.Append("<rect x=\"").Num(x).Append("\" y=\"").Num(baseline - h).Append("\" width=\"").Num(barWidth).Append("\" height=\"").Num(h).Append("\"/></g>");
                if (i == 0 || i == points.Count - 1 || (labelEvery > 0 && i % labelEvery == 0 && points.Count - 1 - i >= labelEvery / 2))
                {
                    var anchor = i == 0 ? "start" : i == points.Count - 1 ? "end" : "middle";
                    var tx = i == 0 ? x : i == points.Count - 1 ? x + barWidth : x + barWidth / 2;
                    sb.Append("<text class=\"label\" x=\"").Num(tx).Append("\" y=\"").Num(Height - 6).Append("\" text-anchor=\"").Append(anchor).Append("\">").Text(p.Label).Append("</text>");
                }
            }
        }
        sb.Append("</svg>");
        return new HtmlString(sb.ToString());
    }
}
