using System.Globalization;
using System.Xml.Linq;
using Gateway.Portal.Charts;
using Microsoft.AspNetCore.Html;

namespace Gateway.Portal.Tests.Charts;

public sealed class ChartTests
{
    private static readonly XNamespace Svg = "http://www.w3.org/2000/svg";

    private static XElement Parse(IHtmlContent content)
    {
        using var w = new StringWriter();
        content.WriteTo(w, System.Text.Encodings.Web.HtmlEncoder.Default);
        return XElement.Parse(w.ToString());
    }

    [Fact]
    public void Bar_chart_is_an_accessible_image_with_bars_proportional_to_values()
    {
        var points = new[] { new ChartPoint("Dec 1", 1, "$1.00"), new ChartPoint("Dec 2", 0, "$0.00"), new ChartPoint("Dec 3", 4, "$4.00") };
        var svg = Parse(BarChart.Render("spend", "Spend per day", "Largest $4.00", points));
        Assert.Equal("img", (string?)svg.Attribute("role"));
        Assert.Equal("spend-title spend-desc", (string?)svg.Attribute("aria-labelledby"));
        Assert.Equal("Spend per day", svg.Element(Svg + "title")!.Value);
        Assert.Equal("Largest $4.00", svg.Element(Svg + "desc")!.Value);
        var bars = svg.Elements(Svg + "g").ToList();
        Assert.Equal(3, bars.Count);
        Assert.Equal("Dec 3: $4.00", bars[2].Element(Svg + "title")!.Value);
        double H(XElement g) => double.Parse((string)g.Element(Svg + "rect")!.Attribute("height")!, CultureInfo.InvariantCulture);
        Assert.Equal(4 * H(bars[0]), H(bars[2]), 1);
        Assert.Equal(0, H(bars[1]));
        Assert.Contains(svg.Elements(Svg + "text"), t => t.Value == "$4.00");
    }

    [Fact]
    public void Horizontal_bars_escape_labels_and_write_values_as_text()
    {
        var svg = Parse(HorizontalBarChart.Render("m", "By model", "2 models", [new ChartPoint("<b>gpt</b> & co", 2, "$2.00"), new ChartPoint("claude", 1, "$1.00")]));
        var labels = svg.Descendants(Svg + "text").Select(t => t.Value).ToList();
        Assert.Equal(["<b>gpt</b> & co", "$2.00", "claude", "$1.00"], labels);
        var widths = svg.Descendants(Svg + "rect").Select(r => double.Parse((string)r.Attribute("width")!, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(widths[0] / 2, widths[1], 1);
    }

    [Fact]
    public void Empty_charts_still_render_valid_svg()
    {
        Assert.Empty(Parse(BarChart.Render("a", "t", "d", [])).Elements(Svg + "g"));
        Assert.Empty(Parse(HorizontalBarChart.Render("b", "t", "d", [])).Elements(Svg + "g"));
    }
}
