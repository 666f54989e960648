using System.Text;
using BenchmarkDotNet.Attributes;
using Gateway.Proxy.Requests;

namespace Gateway.Benchmarks.Micro;

/// <summary>The proxy's one pass over each request body (model, stream, max tokens, stream_options).</summary>
[MemoryDiagnoser]
public class RequestBodyReaderBenchmarks
{
    private byte[] _small = [];
    private byte[] _large = [];

    [GlobalSetup]
    public void Setup()
    {
        _small = Encoding.UTF8.GetBytes("""{"model":"gpt-4o-mini","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Summarise the benefits of an API gateway for language models in one sentence."}]}""");
        // A long conversation: the model comes last, so the reader has to walk past every message.
        var sb = new StringBuilder("{\"messages\":[");
        for (var i = 0; i < 200; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append("{\"role\":\"").Append(i % 2 == 0 ? "user" : "assistant").Append("\",\"content\":\"")
                .Append(string.Join(' ', Enumerable.Repeat("lorem ipsum dolor sit amet", 20))).Append("\"}");
        }
        sb.Append("],\"stream\":true,\"max_tokens\":1024,\"model\":\"gpt-4o-mini\"}");
        _large = Encoding.UTF8.GetBytes(sb.ToString());
    }

    [Benchmark(Baseline = true)]
    public long SmallChatRequest() => RequestBodyReader.Read(_small, out var fields) == BodyReadStatus.Ok ? fields.MaxTokens : -1;

    [Benchmark]
    public long LongConversation100KB() => RequestBodyReader.Read(_large, out var fields) == BodyReadStatus.Ok ? fields.MaxTokens : -1;
}
