using System.ClientModel;
using System.Text;
using Gateway.MockUpstream.Tokens;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using OpenAI.Responses;

namespace Gateway.EndToEnd.MockUpstream;

/// <summary>The official OpenAI .NET SDK talks to the mock unchanged: proof the payloads are compatible.</summary>
public sealed class OpenAISdkCompatibilityTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    private OpenAIClientOptions Options => new() { Endpoint = mock.Server.OpenAIBaseUrl };

    [Fact]
    public async Task Sdk_chat_completion_reads_text_and_usage()
    {
        var client = new ChatClient("gpt-4o-mini", new ApiKeyCredential(mock.Server.ApiKey), Options);

        ChatCompletion completion = await client.CompleteChatAsync(
            [new SystemChatMessage("You are helpful."), new UserChatMessage("Write a haiku about gateways")],
            new ChatCompletionOptions { MaxOutputTokenCount = 7 });

        Assert.Equal("gpt-4o-mini", completion.Model);
        Assert.Equal(MockReply.Text(7), completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(MockTokenizer.Count("You are helpful.", "Write a haiku about gateways"), completion.Usage.InputTokenCount);
        Assert.Equal(7, completion.Usage.OutputTokenCount);
        Assert.Equal(0, completion.Usage.InputTokenDetails.CachedTokenCount);
    }

    [Fact]
    public async Task Sdk_streaming_chat_receives_every_token_and_the_usage_chunk()
    {
        var client = new ChatClient("gpt-4o", new ApiKeyCredential(mock.Server.ApiKey), Options);
        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;

        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("Stream please")]))
        {
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage); // the SDK asks for stream_options.include_usage
        Assert.Equal(MockTokenizer.Count("Stream please"), usage.InputTokenCount);
        Assert.Equal(MockReply.DefaultOutputTokens, usage.OutputTokenCount);
    }

    [Fact]
    public async Task Sdk_embeddings_decode_the_base64_vectors()
    {
        var client = new EmbeddingClient("text-embedding-3-small", new ApiKeyCredential(mock.Server.ApiKey), Options);

        OpenAIEmbeddingCollection embeddings = await client.GenerateEmbeddingsAsync(
            ["first input", "second"], new EmbeddingGenerationOptions { Dimensions = 32 });

        Assert.Equal(2, embeddings.Count);
        Assert.Equal(32, embeddings[0].ToFloats().Length);
        Assert.Equal(MockTokenizer.Count("first input", "second"), embeddings.Usage.InputTokenCount);
    }

    [Fact]
    public async Task Sdk_surfaces_a_rejected_key_as_a_client_result_exception()
    {
        var client = new ChatClient("gpt-4o-mini", new ApiKeyCredential("wrong-key"), Options);
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage("hi")]));
        Assert.Equal(401, ex.Status);
    }

    // The Responses client is marked experimental (OPENAI001) in this SDK version.
#pragma warning disable OPENAI001
    [Fact]
    public async Task Sdk_responses_reads_output_text_and_usage()
    {
        var client = new ResponsesClient(new ApiKeyCredential(mock.Server.ApiKey), new ResponsesClientOptions { Endpoint = mock.Server.OpenAIBaseUrl });

        ResponseResult response = await client.CreateResponseAsync("gpt-4o", "Summarise the gateway", null, default);

        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), response.GetOutputText());
        Assert.Equal(MockTokenizer.Count("Summarise the gateway"), response.Usage.InputTokenCount);
        Assert.Equal(MockReply.DefaultOutputTokens, response.Usage.OutputTokenCount);
    }

    [Fact]
    public async Task Sdk_streaming_responses_receive_deltas_and_the_completed_response()
    {
        var client = new ResponsesClient(new ApiKeyCredential(mock.Server.ApiKey), new ResponsesClientOptions { Endpoint = mock.Server.OpenAIBaseUrl });
        var text = new StringBuilder();
        ResponseResult? completed = null;

        await foreach (var update in await client.CreateResponseStreamingAsync("gpt-4o", "Stream it", null, default))
        {
            if (update is StreamingResponseOutputTextDeltaUpdate delta) text.Append(delta.Delta);
            if (update is StreamingResponseCompletedUpdate done) completed = done.Response;
        }

        Assert.Equal(MockReply.Text(MockReply.DefaultOutputTokens), text.ToString());
        Assert.NotNull(completed);
        Assert.Equal(MockTokenizer.Count("Stream it"), completed.Usage.InputTokenCount);
        Assert.Equal(MockReply.DefaultOutputTokens, completed.Usage.OutputTokenCount);
    }
#pragma warning restore OPENAI001
}
