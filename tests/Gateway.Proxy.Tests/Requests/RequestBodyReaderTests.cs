using System.Buffers;
using System.Text;
using Gateway.Proxy.Requests;

namespace Gateway.Proxy.Tests.Requests;

public sealed class RequestBodyReaderTests
{
    [Fact]
    public void Reads_model_stream_max_tokens_and_stream_options()
    {
        var status = Read("""{"messages":[{"role":"user","content":"{\"model\":\"nope\"}"}],"model":"gpt-4o","stream":true,"max_completion_tokens":300,"stream_options":{"include_usage":true}}""", out var f);
        Assert.Equal(BodyReadStatus.Ok, status);
        Assert.Equal("gpt-4o", f.Model);
        Assert.True(f.Stream);
        Assert.Equal(300, f.MaxTokens);
        Assert.True(f.IncludeUsage);
    }

    [Fact]
    public void Nested_model_properties_are_ignored()
    {
        Assert.Equal(BodyReadStatus.MissingModel, Read("""{"metadata":{"model":"x"},"messages":[]}""", out _));
    }

    [Theory]
    [InlineData("", BodyReadStatus.MalformedJson)]
    [InlineData("   ", BodyReadStatus.MalformedJson)]
    [InlineData("{\"model\":\"a\"", BodyReadStatus.MalformedJson)]
    [InlineData("{\"model\":\"a\"} {}", BodyReadStatus.MalformedJson)]
    [InlineData("{\"model\":\"a\",}", BodyReadStatus.MalformedJson)]
    [InlineData("[1,2]", BodyReadStatus.NotAnObject)]
    [InlineData("{\"model\":5}", BodyReadStatus.MissingModel)]
    [InlineData("{\"model\":\"\"}", BodyReadStatus.MissingModel)]
    [InlineData("{\"messages\":[]}", BodyReadStatus.MissingModel)]
    [InlineData("{\"model\":\"a\",\"model\":\"b\"}", BodyReadStatus.DuplicateModel)]
    [InlineData("{\"model\":1,\"\\u006dodel\":\"b\"}", BodyReadStatus.DuplicateModel)]
    [InlineData("{\"model\":\"\\ud800\"}", BodyReadStatus.InvalidUtf8)]
    public void Rejects_bad_bodies(string body, BodyReadStatus expected)
    {
        Assert.Equal(expected, Read(body, out _));
    }

    [Fact]
    public void Rejects_invalid_utf8()
    {
        byte[] body = [.. "{\"model\":\"a"u8, 0xC3, 0x28, .. "\"}"u8];
        Assert.Equal(BodyReadStatus.InvalidUtf8, RequestBodyReader.Read(body, out _));
    }

    [Theory]
    [InlineData("""{"model":"m","stream":true,"messages":[]}""", """{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[]}""")]
    [InlineData("""{"model":"m","stream":true,"stream_options":{}}""", """{"model":"m","stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("""{"model":"m","stream":true,"stream_options":{"x":1}}""", """{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}}""")]
    [InlineData("""{"model":"m","stream":true,"stream_options":{"include_usage":false}}""", """{"model":"m","stream":true,"stream_options":{"include_usage":true}}""")]
    [InlineData("""{"model":"m","stream":true,"stream_options":null}""", """{"model":"m","stream":true,"stream_options":{"include_usage":true}}""")]
    public void Forces_include_usage_with_minimal_edits(string body, string expected)
    {
        Assert.Equal(expected, Edit(body, null, force: true));
    }

    [Fact]
    public void Maps_the_model_and_forces_include_usage_together_keeping_other_bytes()
    {
        var body = """{ "stream" : true , "model" : "alias", "n":1 }""";
        Assert.Equal("""{"stream_options":{"include_usage":true}, "stream" : true , "model" : "real\"name", "n":1 }""", Edit(body, "\"real\\\"name\"", force: true));
    }

    [Fact]
    public void No_edit_when_nothing_changes()
    {
        var bytes = Encoding.UTF8.GetBytes("""{"model":"m","stream":false}""");
        Assert.Equal(BodyReadStatus.Ok, RequestBodyReader.Read(bytes, out var f));
        Assert.False(BodyEditor.TryEdit(bytes, f, null, forceIncludeUsage: true, out var edited, out _));
        Assert.Null(edited);
    }

    private static BodyReadStatus Read(string body, out RequestFields fields) => RequestBodyReader.Read(Encoding.UTF8.GetBytes(body), out fields);

    private static string Edit(string body, string? encodedModel, bool force)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        Assert.Equal(BodyReadStatus.Ok, RequestBodyReader.Read(bytes, out var f));
        Assert.True(BodyEditor.TryEdit(bytes, f, encodedModel is null ? null : Encoding.UTF8.GetBytes(encodedModel), force, out var edited, out var length));
        try { return Encoding.UTF8.GetString(edited!, 0, length); }
        finally { ArrayPool<byte>.Shared.Return(edited!); }
    }
}
