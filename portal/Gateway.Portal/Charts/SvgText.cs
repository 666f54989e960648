using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;

namespace Gateway.Portal.Charts;

/// <summary>Small helpers shared by the SVG charts: escaping and invariant numbers.</summary>
internal static class SvgText
{
    public static StringBuilder Text(this StringBuilder sb, string text) => sb.Append(HtmlEncoder.Default.Encode(text));

    public static StringBuilder Num(this StringBuilder sb, double value) => sb.Append(Math.Round(value, 2).ToString(CultureInfo.InvariantCulture));

    /// <summary>The opening tag, title and description every chart carries (read by screen readers as an image with a name and summary).</summary>
    public static void Open(StringBuilder sb, string id, string title, string description, double width, double height, string cssClass)
    {
        sb.Append("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart ").Text(cssClass).Append("\" role=\"img\" viewBox=\"0 0 ").Num(width).Append(' ').Num(height)
          .Append("\" preserveAspectRatio=\"xMidYMid meet\" aria-labelledby=\"").Text(id).Append("-title ").Text(id).Append("-desc\">");
        sb.Append("<title id=\"").Text(id).Append("-title\">").Text(title).Append("</title>");
        sb.Append("<desc id=\"").Text(id).Append("-desc\">").Text(description).Append("</desc>");
    }
}
