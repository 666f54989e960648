using Gateway.Operator.Sources;

namespace Gateway.Operator.Tests.Sources;

public sealed class YamlDocumentsTests
{
    [Fact]
    public void Plain_scalars_are_typed_and_quoted_scalars_stay_strings()
    {
        var docs = YamlDocuments.Parse("""
            a: 50
            b: 0.25
            c: true
            d: "true"
            e: '42'
            f: ~
            g: hello
            """, "t.yaml");
        var o = Assert.Single(docs);
        Assert.Equal(50, o["a"]!.GetValue<long>());
        Assert.Equal(0.25m, o["b"]!.GetValue<decimal>());
        Assert.True(o["c"]!.GetValue<bool>());
        Assert.Equal("true", o["d"]!.GetValue<string>());
        Assert.Equal("42", o["e"]!.GetValue<string>());
        Assert.Null(o["f"]);
        Assert.Equal("hello", o["g"]!.GetValue<string>());
    }

    [Fact]
    public void Multi_document_files_yield_each_document_and_skip_empty_ones()
    {
        var docs = YamlDocuments.Parse("kind: A\n---\n---\nkind: B\n", "t.yaml");
        Assert.Equal(["A", "B"], docs.Select(d => d["kind"]!.GetValue<string>()));
    }

    [Fact]
    public void Invalid_yaml_names_the_file_and_line()
    {
        var e = Assert.Throws<InvalidDataException>(() => YamlDocuments.Parse("a: [1, 2\nb: c", "broken.yaml"));
        Assert.Contains("broken.yaml", e.Message, StringComparison.Ordinal);
    }
}
