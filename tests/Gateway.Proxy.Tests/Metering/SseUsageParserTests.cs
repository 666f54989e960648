using System.Buffers;
using System.Text;
using Gateway.Core.Usage;
using Gateway.Proxy.Metering;
using Gateway.Proxy.Requests;

namespace Gateway.Proxy.Tests.Metering;

public sealed class SseUsageParserTests
{
    private const string OpenAiStream =
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}],\"usage\":null}\n\n" +
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n" +
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,\"completion_tokens\":7,\"total_tokens\":28,\"prompt_tokens_details\":{\"cached_tokens\":5,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":2}}}\n\n" +
        "data: [DONE]\n\n";

    private const string AnthropicStream =
        "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":4,\"cache_read_input_tokens\":9,\"output_tokens\":1}}}\r\n\r\n" +
        "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n" +
        "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi there\"}}\r\n\r\n" +
        "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n" +
        "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

    private const string ResponsesStream =
        "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r1\",\"status\":\"in_progress\",\"usage\":null}}\n\n" +
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hey\"}\n\n" +
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":30,\"input_tokens_details\":{\"cached_tokens\":10},\"output_tokens\":12,\"output_tokens_details\":{\"reasoning_tokens\":4},\"total_tokens\":42}}}\n\n";

    [Fact]
    public void Openai_usage_is_read_when_the_stream_is_split_at_every_byte_offset()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiStream);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var usage = Run(bytes, split, dropUsageOnly: false, out var forwarded);
            Assert.Equal(new TokenCounts(16, 5, 0, 7), usage.ToTokenCounts(UsageFormat.OpenAIChat));
            Assert.Equal(OpenAiStream, forwarded);
        }
    }

    [Fact]
    public void Openai_usage_is_read_when_every_byte_arrives_alone()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiStream);
        using var parser = new SseUsageParser();
        foreach (var b in bytes) parser.Feed([b], null);
        parser.Complete(null);
        Assert.Equal(new TokenCounts(16, 5, 0, 7), parser.Usage.ToTokenCounts(UsageFormat.OpenAIChat));
        Assert.Equal(4, parser.EventCount);
    }

    [Fact]
    public void Anthropic_usage_with_crlf_is_read_at_every_split_and_message_delta_overrides_output()
    {
        var bytes = Encoding.UTF8.GetBytes(AnthropicStream);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var usage = Run(bytes, split, dropUsageOnly: false, out _);
            Assert.Equal(new TokenCounts(25, 9, 4, 15), usage.ToTokenCounts(UsageFormat.Anthropic));
        }
    }

    [Fact]
    public void Responses_usage_is_read_from_response_completed_at_every_split()
    {
        var bytes = Encoding.UTF8.GetBytes(ResponsesStream);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var usage = Run(bytes, split, dropUsageOnly: false, out _);
            Assert.Equal(new TokenCounts(20, 10, 0, 12), usage.ToTokenCounts(UsageFormat.OpenAIResponses));
        }
    }

    [Fact]
    public void Usage_only_chunk_is_dropped_in_event_mode_at_every_split_but_still_counted()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiStream);
        var expected = OpenAiStream.Replace(OpenAiStream.Split("\n\n")[2] + "\n\n", "", StringComparison.Ordinal);
        for (var split = 0; split <= bytes.Length; split++)
        {
            var usage = Run(bytes, split, dropUsageOnly: true, out var forwarded);
            Assert.Equal(expected, forwarded);
            Assert.Equal(7, usage.OutputTokens);
        }
    }

    [Fact]
    public void Stream_without_usage_counts_generated_text_for_estimation()
    {
        var stream = "data: {\"choices\":[{\"delta\":{\"content\":\"abcdefgh\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"ijkl\"}}]}\n\ndata: [DONE]\n\n";
        var usage = Run(Encoding.UTF8.GetBytes(stream), 17, dropUsageOnly: false, out _);
        Assert.False(usage.Seen);
        Assert.Equal(12, usage.OutputTextBytes);
    }

    [Fact]
    public void Final_event_without_blank_line_is_counted_on_complete()
    {
        var stream = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
        using var parser = new SseUsageParser();
        parser.Feed(Encoding.UTF8.GetBytes(stream), null);
        Assert.False(parser.Usage.Seen);
        parser.Complete(null);
        Assert.Equal(4, parser.Usage.OutputTokens);
    }

    [Fact]
    public void Claude_code_mode_holds_a_zero_message_start_and_corrects_its_input_tokens()
    {
        var stream =
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":0,\"output_tokens\":1}}}\n\n" +
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n" +
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":1234,\"output_tokens\":5}}\n\n" +
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        var bytes = Encoding.UTF8.GetBytes(stream);
        for (var split = 0; split <= bytes.Length; split += 7)
        {
            var writer = new ArrayBufferWriter<byte>();
            using var parser = new SseUsageParser(correctMessageStart: true);
            parser.Feed(bytes.AsSpan(0, split), writer);
            parser.Feed(bytes.AsSpan(split), writer);
            parser.Complete(writer);
            var forwarded = Encoding.UTF8.GetString(writer.WrittenSpan);
            Assert.Equal(stream.Replace("\"input_tokens\":0,", "\"input_tokens\":1234,", StringComparison.Ordinal), forwarded);
        }
    }

    [Fact]
    public void Claude_code_mode_passes_a_real_message_start_through_immediately()
    {
        var first = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}\n\n";
        var writer = new ArrayBufferWriter<byte>();
        using var parser = new SseUsageParser(correctMessageStart: true);
        parser.Feed(Encoding.UTF8.GetBytes(first), writer);
        Assert.Equal(first, Encoding.UTF8.GetString(writer.WrittenSpan));
    }

    [Theory]
    [InlineData("a\n\nb", 1, 2)]
    [InlineData("a\r\n\r\nb", 2, 3)]
    [InlineData("a\n", -1, 0)]
    [InlineData("a\n\r", -1, 0)]
    [InlineData("a\nb\n\n", 3, 2)]
    public void Finds_event_ends(string text, int end, int separator)
    {
        Assert.Equal(end, SseUsageParser.FindEventEnd(Encoding.UTF8.GetBytes(text), out var sep));
        if (end >= 0) Assert.Equal(separator, sep);
    }

    private static UsageAccumulator Run(byte[] bytes, int split, bool dropUsageOnly, out string forwarded)
    {
        var writer = new ArrayBufferWriter<byte>();
        using var parser = new SseUsageParser(dropUsageOnlyChunks: dropUsageOnly);
        var eventMode = parser.EventMode;
        foreach (var part in new[] { bytes.AsMemory(0, split), bytes.AsMemory(split) })
        {
            if (eventMode) parser.Feed(part.Span, writer);
            else { writer.Write(part.Span); parser.Feed(part.Span, null); }
        }
        parser.Complete(eventMode ? writer : null);
        forwarded = Encoding.UTF8.GetString(writer.WrittenSpan);
        return parser.Usage;
    }
}
