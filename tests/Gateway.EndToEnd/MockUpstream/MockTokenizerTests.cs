using System.Text;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class MockTokenizerTests
{
    [Theory]
    [InlineData("", 0)]
    [InlineData("   ", 0)]
    [InlineData("one", 1)]
    [InlineData("  one   two\tthree\nfour\r\n", 4)]
    [InlineData("héllo, wörld!", 2)]
    public void Counts_whitespace_separated_words(string text, int words)
    {
        Assert.Equal(words, MockTokenizer.CountWords(text));
        Assert.Equal(words, MockTokenizer.CountWords(Encoding.UTF8.GetBytes(text)));
    }

    [Fact]
    public void Adds_three_tokens_per_message()
    {
        Assert.Equal(3 + 2 + 3 + 0, MockTokenizer.Count("Hello there", ""));
    }

    [Fact]
    public void Counts_a_chat_body_from_its_message_contents_only()
    {
        // Escaped whitespace separates words once unescaped; model names and options never count.
        var body = """
            {"model":"a b c d","temperature":0.5,"stream_options":{"include_usage":true},
             "messages":[{"role":"user","content":"one\ntwo\tthree"},
                         {"role":"user","content":[{"type":"text","text":"four five"},{"type":"image_url","image_url":{"url":"x y"}}]}]}
            """;
        Assert.Equal(MockTokenizer.Count("one two three", "four five"), MockTokenizer.Count(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public void Counts_anthropic_system_and_tool_result_text()
    {
        var body = """
            {"model":"claude","system":"Be brief.","messages":[
              {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"42 degrees"}]}]}]}
            """;
        Assert.Equal(MockTokenizer.Count("Be brief.", "42 degrees"), MockTokenizer.Count(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public void Values_of_unexpected_types_do_not_derail_the_count()
    {
        var body = """{"model":{"x":[1]},"max_tokens":{"a":{"b":2}},"stream":[true],"messages":[{"role":"user","content":"a b"}],"dimensions":"7"}""";
        Assert.Equal(MockTokenizer.Count("a b"), MockTokenizer.Count(Encoding.UTF8.GetBytes(body)));
    }

    [Fact]
    public void Counts_token_id_inputs_one_token_per_id()
    {
        Assert.Equal(4, MockTokenizer.Count("""{"model":"e","input":[1,2,3,4]}"""u8));
        Assert.Equal(5, MockTokenizer.Count("""{"model":"e","input":[[1,2],[3,4,5]]}"""u8));
    }

    [Fact]
    public void Reply_repeats_the_sentence_one_word_per_token()
    {
        Assert.Equal("", MockReply.Text(0));
        Assert.Equal("This is a", MockReply.Text(3));
        Assert.Equal(MockReply.Sentence + " This", MockReply.Text(11));
        var big = MockReply.Text(20_000);
        Assert.Equal(20_000, MockTokenizer.CountWords(big));
        Assert.StartsWith(MockReply.Text(100), big, StringComparison.Ordinal);
    }
}
