using System.Buffers.Binary;
using System.Net;
using System.Text.Json;
using Gateway.MockUpstream.Tokens;

namespace Gateway.EndToEnd.MockUpstream;

public sealed class OpenAIEndpointsTests(MockUpstreamFixture mock) : IClassFixture<MockUpstreamFixture>
{
    [Fact]
    public async Task Legacy_completions_reply_with_text_and_usage()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/completions",
            """{"model":"gpt-3.5-turbo-instruct","prompt":"Say this is a test","max_tokens":5}"""));
        var json = await MockHttp.JsonAsync(response);

        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.Equal("gpt-3.5-turbo-instruct", json.GetProperty("model").GetString());
        Assert.Equal(MockReply.Text(5), json.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal("length", json.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(MockTokenizer.Count("Say this is a test"), json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, json.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Legacy_completions_stream_text_chunks_and_usage_on_request()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/completions",
            """{"model":"m","prompt":["one two","three"],"stream":true,"stream_options":{"include_usage":true}}""",
            ("x-mock-output-tokens", "3")));
        var events = await SseEvent.ReadAllAsync(response);

        Assert.Equal("[DONE]", events[^1].Data);
        var chunks = events[..^1].Select(e => e.Json).ToList();
        Assert.Equal("This is a", string.Concat(chunks.Where(c => c.GetProperty("choices").GetArrayLength() > 0)
            .Select(c => c.GetProperty("choices")[0].GetProperty("text").GetString())));
        var usage = chunks[^1].GetProperty("usage");
        Assert.Equal(MockTokenizer.Count("one two", "three"), usage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Embeddings_return_one_float_vector_per_input_with_usage()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/embeddings",
            """{"model":"text-embedding-3-small","input":["first text","second one here"],"dimensions":8}"""));
        var json = await MockHttp.JsonAsync(response);

        Assert.Equal("list", json.GetProperty("object").GetString());
        Assert.Equal("text-embedding-3-small", json.GetProperty("model").GetString());
        var data = json.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        Assert.Equal(1, data[1].GetProperty("index").GetInt32());
        Assert.Equal(8, data[0].GetProperty("embedding").GetArrayLength());
        Assert.NotEqual(data[0].GetProperty("embedding").GetRawText(), data[1].GetProperty("embedding").GetRawText());
        var expected = MockTokenizer.Count("first text", "second one here");
        Assert.Equal(expected, json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected, json.GetProperty("usage").GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Embeddings_in_base64_are_little_endian_floats_matching_the_float_format()
    {
        using var asFloats = await mock.Client.SendAsync(MockHttp.Post("/v1/embeddings",
            """{"model":"e","input":"hello","dimensions":16}"""));
        using var asBase64 = await mock.Client.SendAsync(MockHttp.Post("/v1/embeddings",
            """{"model":"e","input":"hello","dimensions":16,"encoding_format":"base64"}"""));

        var floats = (await MockHttp.JsonAsync(asFloats)).GetProperty("data")[0].GetProperty("embedding")
            .EnumerateArray().Select(e => e.GetSingle()).ToArray();
        var bytes = Convert.FromBase64String((await MockHttp.JsonAsync(asBase64)).GetProperty("data")[0].GetProperty("embedding").GetString()!);
        var decoded = Enumerable.Range(0, bytes.Length / 4).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4))).ToArray();
        Assert.Equal(16, floats.Length);
        Assert.Equal(floats, decoded);
    }

    [Fact]
    public async Task Responses_api_replies_with_output_text_and_usage()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/responses",
            """{"model":"gpt-4o","instructions":"Be kind.","input":[{"role":"user","content":[{"type":"input_text","text":"Tell me a joke"}]}]}""",
            ("x-mock-cached-tokens", "2"), ("x-mock-reasoning-tokens", "3")));
        var json = await MockHttp.JsonAsync(response);

        Assert.Equal("response", json.GetProperty("object").GetString());
        Assert.Equal("completed", json.GetProperty("status").GetString());
        Assert.Equal("gpt-4o", json.GetProperty("model").GetString());
        var part = json.GetProperty("output")[0].GetProperty("content")[0];
        Assert.Equal("output_text", part.GetProperty("type").GetString());
        Assert.Equal(MockReply.Text(12), part.GetProperty("text").GetString());
        var usage = json.GetProperty("usage");
        var input = MockTokenizer.Count("Be kind.", "Tell me a joke");
        Assert.Equal(input + 2, usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(2, usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(12 + 3, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32());
        Assert.Equal(input + 2 + 15, usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Responses_api_streams_events_in_order_with_usage_in_response_completed()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/responses",
            """{"model":"gpt-4o","input":"Hi","stream":true}""", ("x-mock-output-tokens", "3")));
        var events = await SseEvent.ReadAllAsync(response);

        Assert.Equal(
        [
            "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
            "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
        ], events.Select(e => e.Event));
        Assert.All(events, e => Assert.Equal(e.Event, e.Json.GetProperty("type").GetString()));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.Json.GetProperty("sequence_number").GetInt32()));
        Assert.Equal("This is a", string.Concat(events.Where(e => e.Event == "response.output_text.delta").Select(e => e.Json.GetProperty("delta").GetString())));
        Assert.Equal(JsonValueKind.Null, events[0].Json.GetProperty("response").GetProperty("usage").ValueKind);
        var usage = events[^1].Json.GetProperty("response").GetProperty("usage");
        Assert.Equal(MockTokenizer.Count("Hi"), usage.GetProperty("input_tokens").GetInt32());
        Assert.Equal(3, usage.GetProperty("output_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
        Assert.Equal(0, usage.GetProperty("output_tokens_details").GetProperty("reasoning_tokens").GetInt32());
    }

    [Fact]
    public async Task Responses_api_cut_short_by_max_output_tokens_ends_incomplete()
    {
        using var response = await mock.Client.SendAsync(MockHttp.Post("/v1/responses",
            """{"model":"gpt-4o","input":"Hi","stream":true,"max_output_tokens":2}"""));
        var events = await SseEvent.ReadAllAsync(response);

        Assert.Equal("response.incomplete", events[^1].Event);
        var final = events[^1].Json.GetProperty("response");
        Assert.Equal("incomplete", final.GetProperty("status").GetString());
        Assert.Equal("max_output_tokens", final.GetProperty("incomplete_details").GetProperty("reason").GetString());
        Assert.Equal(2, final.GetProperty("usage").GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public async Task Lists_models_in_openai_shape_and_anthropic_shape_by_header()
    {
        var openai = await MockHttp.JsonAsync(await mock.Client.GetAsync("/v1/models"));
        Assert.Equal("list", openai.GetProperty("object").GetString());
        Assert.Contains("gpt-4o-mini", openai.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));

        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Add("anthropic-version", "2023-06-01");
        var anthropic = await MockHttp.JsonAsync(await mock.Client.SendAsync(request));
        Assert.False(anthropic.GetProperty("has_more").GetBoolean());
        Assert.Equal("model", anthropic.GetProperty("data")[0].GetProperty("type").GetString());

        var one = await MockHttp.JsonAsync(await mock.Client.GetAsync("/v1/models/gpt-4o"));
        Assert.Equal("gpt-4o", one.GetProperty("id").GetString());
        using var missing = await mock.Client.GetAsync("/v1/models/no-such-model");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Azure_deployment_routes_take_api_key_and_name_the_deployment_as_model()
    {
        using var client = MockHttp.ClientWithoutCredentials(mock.Server);
        var body = """{"messages":[{"role":"user","content":"Hi Azure"}]}""";

        using var chat = await client.SendAsync(MockHttp.Post("/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21", body,
            ("api-key", mock.Server.ApiKey)));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        var json = await MockHttp.JsonAsync(chat);
        Assert.Equal("my-gpt", json.GetProperty("model").GetString());
        Assert.Equal(MockTokenizer.Count("Hi Azure"), json.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        using var embeddings = await client.SendAsync(MockHttp.Post("/openai/deployments/emb/embeddings?api-version=2024-10-21",
            """{"input":"x","dimensions":4}""", ("api-key", mock.Server.ApiKey)));
        Assert.Equal("emb", (await MockHttp.JsonAsync(embeddings)).GetProperty("model").GetString());

        using var noVersion = await client.SendAsync(MockHttp.Post("/openai/deployments/my-gpt/chat/completions", body,
            ("api-key", mock.Server.ApiKey)));
        Assert.Equal(HttpStatusCode.BadRequest, noVersion.StatusCode);
        Assert.Contains("api-version", (await MockHttp.JsonAsync(noVersion)).GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);

        using var wrongKey = await client.SendAsync(MockHttp.Post("/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21", body,
            ("api-key", "wrong")));
        Assert.Equal(HttpStatusCode.Unauthorized, wrongKey.StatusCode);
    }
}
