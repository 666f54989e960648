using System.Globalization;

namespace Gateway.Benchmarks.OperatorScale;

/// <summary>CPU time and memory of another process, read from /proc (Linux).</summary>
public sealed class ProcessSampler(int pid)
{
    // USER_HZ: the unit of utime/stime in /proc/PID/stat; 100 on every Linux this project runs on.
    private const double TicksPerSecond = 100;

    /// <summary>User + system CPU seconds used so far.</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command name (which may hold spaces) start after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after "pid (comm)".
        var utime = long.Parse(fields[11], CultureInfo.InvariantCulture);
        var stime = long.Parse(fields[12], CultureInfo.InvariantCulture);
        return (utime + stime) / TicksPerSecond;
    }

    /// <summary>Peak resident set size (VmHWM) in MiB: the working set's high-water mark.</summary>
    public double PeakWorkingSetMiB() => StatusKiB("VmHWM:") / 1024.0;

    /// <summary>Current resident set size (VmRSS) in MiB.</summary>
    public double WorkingSetMiB() => StatusKiB("VmRSS:") / 1024.0;

    private long StatusKiB(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (!line.StartsWith(field, StringComparison.Ordinal)) continue;
            var parts = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(parts[0], CultureInfo.InvariantCulture);
        }
        return 0;
    }

    /// <summary>The 1-minute load average of the machine (it is shared: figures depend on it).</summary>
    public static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[..3] is var l ? string.Join(' ', l) : "";
}
