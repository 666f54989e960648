using System.Buffers;
using System.Text;
using BenchmarkDotNet.Attributes;
using Gateway.Proxy.Metering;

namespace Gateway.Benchmarks.Micro;

/// <summary>The proxy's per-stream metering cost on the stream the mock sends for the macro benchmark.</summary>
[MemoryDiagnoser]
public class SseUsageParserBenchmarks
{
    private readonly ArrayBufferWriter<byte> _forward = new(16 * 1024);
    private byte[] _stream = [];

    [GlobalSetup]
    public void Setup() => _stream = OpenAIStream(tokens: 12);

    /// <summary>Pass-through: the bytes are forwarded by the caller, the parser only reads usage.</summary>
    [Benchmark(Baseline = true)]
    public long PassThrough()
    {
        using var parser = new SseUsageParser();
        parser.Feed(_stream, null);
        parser.Complete(null);
        return parser.Usage.OutputTokens;
    }

    /// <summary>Event mode: whole events forwarded, the forced usage-only chunk dropped.</summary>
    [Benchmark]
    public long EventModeDroppingUsageChunk()
    {
        _forward.ResetWrittenCount();
        using var parser = new SseUsageParser(dropUsageOnlyChunks: true);
        parser.Feed(_stream, _forward);
        parser.Complete(_forward);
        return parser.Usage.OutputTokens + _forward.WrittenCount;
    }

    /// <summary>The same stream arriving in 64-byte reads, so events are carried over between reads.</summary>
    [Benchmark]
    public long PassThroughIn64ByteReads()
    {
        using var parser = new SseUsageParser();
        for (var i = 0; i < _stream.Length; i += 64) parser.Feed(_stream.AsSpan(i, Math.Min(64, _stream.Length - i)), null);
        parser.Complete(null);
        return parser.Usage.OutputTokens;
    }

    /// <summary>An OpenAI chat completion stream shaped like the mock's: one chunk per token, a usage chunk, [DONE].</summary>
    internal static byte[] OpenAIStream(int tokens)
    {
        var sb = new StringBuilder();
        const string head = "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",";
        sb.Append("data: ").Append(head).Append("\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n");
        for (var i = 0; i < tokens; i++)
        {
            sb.Append("data: ").Append(head).Append("\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"},\"finish_reason\":null}],\"usage\":null}\n\n");
        }
        sb.Append("data: ").Append(head).Append("\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
        sb.Append("data: ").Append(head).Append("\"choices\":[],\"usage\":{\"prompt_tokens\":17,\"completion_tokens\":").Append(tokens)
            .Append(",\"total_tokens\":").Append(17 + tokens).Append(",\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n");
        sb.Append("data: [DONE]\n\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}
