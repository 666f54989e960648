using System.Text;
using Anthropic;
using Anthropic.Models.Messages;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

/// <summary>The official Anthropic .NET SDK talks to the mock unchanged: proof the payloads and events are compatible.</summary>
public sealed class AnthropicSdkCompatibilityTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private AnthropicClient Client() => new() { ApiKey = mock.Server.ApiKey, BaseUrl = mock.Server.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };

    private static MessageCreateParams Params(string text, long maxTokens = 1024) => new()
    {
        MaxTokens = maxTokens,
        Messages = [new UserMessageParam(text)],
        Model = "claude-sonnet-4-5",
    };

    [Fact]
    public async Task Sdk_message_reads_text_and_usage()
    {
        var message = await Client().Messages.Create(Params("Hello, Claude", maxTokens: 5));

        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal(MockReply.Text(5), text.Text);
        Assert.Equal(MockTokenizer.Count("Hello, Claude"), message.Usage.InputTokens);
        Assert.Equal(5, message.Usage.OutputTokens);
    }

    [Fact]
    public async Task Sdk_stream_receives_text_deltas_and_usage()
    {
        var text = new StringBuilder();
        long? input = null, output = null;

        await foreach (var ev in Client().Messages.CreateStreaming(Params("Stream to me")))
        {
            if (ev.TryPickStart(out var start)) input = start.Message.Usage.InputTokens;
            if (ev.TryPickContentBlockDelta(out var delta) && delta.Delta.TryPickText(out var t)) text.Append(t.Text);
            if (ev.TryPickDelta(out var messageDelta)) output = messageDelta.Usage.OutputTokens;
        }

        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), text.ToString());
        Assert.Equal(MockTokenizer.Count("Stream to me"), input);
        Assert.Equal(MockReply.DefaultOutputTokens, output);
    }

    [Fact]
    public async Task Sdk_counts_tokens()
    {
        var count = await Client().Messages.CountTokens(new MessageCountTokensParams
        {
            Messages = [new UserMessageParam("How many tokens is this")],
            Model = "claude-sonnet-4-5",
        });
        Assert.Equal(MockTokenizer.Count("How many tokens is this"), count.InputTokens);
    }
}
