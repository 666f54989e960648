using System.Globalization;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace Gateway.Benchmarks.Diagnostics;

/// <summary>
/// <c>alloc-types --trace F.nettrace [--top 25]</c>: which types a process allocated, from the GC's
/// AllocationTick samples (one per ~100 KB) in an EventPipe trace. Record one without dotnet-trace by
/// starting the process with DOTNET_EnableEventPipe=1,
/// DOTNET_EventPipeConfig=Microsoft-Windows-DotNETRuntime:0x1:5 and DOTNET_EventPipeOutputPath=F.nettrace.
/// </summary>
public static class AllocationTypes
{
    public static int Run(CommandLine args)
    {
        var top = (int)args.Number("top", 25);
        var bytes = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;
        using (var source = new EventPipeEventSource(args.Required("trace")))
        {
            source.Clr.GCAllocationTick += (GCAllocationTickTraceData e) =>
            {
                var name = string.IsNullOrEmpty(e.TypeName) ? "?" : e.TypeName;
                bytes[name] = bytes.GetValueOrDefault(name) + e.AllocationAmount64;
                total += e.AllocationAmount64;
            };
            source.Process();
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"sampled {total / 1048576.0:F1} MiB in {bytes.Count} types"));
        foreach (var (name, amount) in bytes.OrderByDescending(p => p.Value).Take(top))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{100.0 * amount / total,6:F1} %  {name}"));
        }
        return 0;
    }
}
