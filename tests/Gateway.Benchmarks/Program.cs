using Gateway.Benchmarks.Baseline;
using Gateway.Benchmarks.Diagnostics;
using Gateway.Benchmarks.Enforcement;
using Gateway.Benchmarks.Load;
using Gateway.Benchmarks.Report;

namespace Gateway.Benchmarks;

/// <summary>Entry point of the benchmark tools that config/local/bench.sh drives.</summary>
/// <remarks>
/// <c>load</c>: open-loop (fixed-rate) load generator, one result line on stdout.
/// <c>forward</c>: a bare Kestrel + HttpClient forwarder, the .NET floor for a reverse proxy.
/// <c>micro</c>: BenchmarkDotNet micro-benchmarks of hot-path pieces (Micro/).
/// <c>report</c>: turns the collected result lines into the comparison table and docs/benchmarks.md.
/// </remarks>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0)
        {
            await Console.Error.WriteLineAsync("usage: Gateway.Benchmarks load --url URL --rate N --duration S [--warmup S] [--body-file F] [--header 'Name: value']... [--connections N] [--label L]\n" +
                "       Gateway.Benchmarks forward --urls http://127.0.0.1:PORT --upstream http://127.0.0.1:PORT\n" +
                "       Gateway.Benchmarks redis-enforce [--redis 127.0.0.1:56379] [--n 5000] [--warmup 500] [--limits all|none] [--redis-pid PID] [--concurrency 1]\n" +
                "       Gateway.Benchmarks portal [--rows 10000000] [--users 10000] [--big-user-rows 1000000] [--iterations 40] [--database tokengate_bench_portal]\n" +
                "       Gateway.Benchmarks portal-spend [--users 10000] [--models 5] [--days 90] [--iterations 40]\n" +
                "       Gateway.Benchmarks operator-scale --operator-dll PATH [--cluster fake|real] [--keys 10000] [--users 2000] [--upstreams 50] [--rotate 1000] [--idle 60]\n" +
                "       Gateway.Benchmarks policy-cache [--keys 100000]\n" +
                "       Gateway.Benchmarks ledger-write [--events 20000] [--users 100] [--batches 1,10,100,1000]\n" +
                "       Gateway.Benchmarks micro [BenchmarkDotNet arguments, e.g. --filter '*Sse*']\n" +
                "       Gateway.Benchmarks report --results FILE --machine FILE [--out docs/benchmarks.md]");
            return 2;
        }
        if (args[0] == "micro")
        {
            // BenchmarkDotNet's own arguments, e.g. --filter '*Sse*' --job short.
            BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args[1..]);
            return 0;
        }
        var options = CommandLine.Parse(args.AsSpan(1));
        try
        {
            return args[0] switch
            {
                "load" => await OpenLoopCommand.RunAsync(options),
                "report" => ReportCommand.Run(options),
                "forward" => await BareForwarder.RunAsync(options),
                "alloc-types" => AllocationTypes.Run(options),
                "redis-enforce" => await RedisEnforceCommand.RunAsync(options),
                "portal" => await Portal.PortalBenchCommand.RunAsync(options),
                "portal-spend" => await Portal.PortalSpendBenchCommand.RunAsync(options),
                "operator-scale" => await OperatorScale.OperatorScaleCommand.RunAsync(options),
                "policy-cache" => await OperatorScale.PolicyCacheScaleCommand.RunAsync(options),
                "ledger-write" => await Ledger.LedgerWriteCommand.RunAsync(options),
                _ => throw new ArgumentException($"Unknown command '{args[0]}'; use load or report."),
            };
        }
        catch (ArgumentException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            return 2;
        }
    }
}
