using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Gateway.Core.Metrics;

/// <summary>
/// The process and runtime metrics a Prometheus user expects, under their conventional names.
/// .NET's built-in "System.Runtime" meter has the same data, but with OpenTelemetry names
/// (dotnet.process.cpu.time, dotnet.gc.collections, …) that dashboards for process_* would not find;
/// the values are read directly at scrape time, which costs a few system calls per scrape.
/// </summary>
internal static class ProcessMetrics
{
    public static double StartTimeSeconds()
    {
        using var p = Process.GetCurrentProcess();
        return new DateTimeOffset(p.StartTime.ToUniversalTime()).ToUnixTimeMilliseconds() / 1000.0;
    }

    public static void Write(StringBuilder sb, double startTimeSeconds)
    {
        Sample(sb, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", Environment.CpuUsage.TotalTime.TotalSeconds);
        Sample(sb, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", Environment.WorkingSet);
        Sample(sb, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTimeSeconds);
        var fds = OpenFileDescriptors();
        if (fds >= 0) Sample(sb, "process_open_fds", "gauge", "Number of open file descriptors.", fds);

        PrometheusText.AppendHeader(sb, "dotnet_gc_collections_total", "counter", "Garbage collections per generation (GC.CollectionCount: a gen1 or gen2 collection also counts for the lower generations).");
        for (var gen = 0; gen <= GC.MaxGeneration; gen++)
        {
            PrometheusText.AppendSample(sb, "dotnet_gc_collections_total", "generation=\"gen" + gen.ToString(CultureInfo.InvariantCulture) + "\"",
                GC.CollectionCount(gen).ToString(CultureInfo.InvariantCulture));
        }
        Sample(sb, "dotnet_gc_allocated_bytes_total", "counter", "Bytes allocated on the managed heap since the process started.", GC.GetTotalAllocatedBytes());
        Sample(sb, "dotnet_gc_heap_size_bytes", "gauge", "Bytes currently thought to be allocated on the managed heap.", GC.GetTotalMemory(false));
        Sample(sb, "dotnet_threadpool_threads", "gauge", "Thread pool threads.", ThreadPool.ThreadCount);
        Sample(sb, "dotnet_threadpool_queue_length", "gauge", "Work items queued to the thread pool and not yet started.", ThreadPool.PendingWorkItemCount);
    }

    private static void Sample(StringBuilder sb, string name, string type, string help, double value)
    {
        PrometheusText.AppendHeader(sb, name, type, help);
        PrometheusText.AppendSample(sb, name, "", PrometheusText.FormatDouble(value));
    }

    private static int OpenFileDescriptors()
    {
        try
        {
            return Directory.Exists("/proc/self/fd") ? Directory.EnumerateFileSystemEntries("/proc/self/fd").Count() : -1;
        }
        catch (IOException) { return -1; }
        catch (UnauthorizedAccessException) { return -1; }
    }
}
