using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Operator.Verify;

/// <summary>Prints a <see cref="VerifyReport"/> for people or, with --json, for programs. Ids and amounts only: no secrets.</summary>
internal static class VerifyReportWriter
{
    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static void WriteJson(TextWriter w, VerifyReport report, int exitCode, string target)
    {
        w.WriteLine(JsonSerializer.Serialize(new
        {
            report.Clean,
            ExitCode = exitCode,
            Target = target,
            report.CheckedAt,
            report.Attempts,
            report.Counts,
            report.ViolationCounts,
            report.Violations,
        }, JsonOptions));
    }

    public static void WriteText(TextWriter w, VerifyReport report, int exitCode, string target)
    {
        var c = report.Counts;
        var inv = CultureInfo.InvariantCulture;
        w.WriteLine(string.Create(inv, $"TokenGate conservation check: {target}"));
        w.WriteLine(string.Create(inv, $"  users         {c.Users} ({c.UsersChecked} checked, {c.UsersSkipped} skipped: deleted, no Redis balance)"));
        w.WriteLine(string.Create(inv, $"  ledger        {c.GrantEntries} grant, {c.ConsumeEntries} consume, {c.OtherEntries} other entries; Σ {c.LedgerSumUsd} USD"));
        w.WriteLine(string.Create(inv, $"  usage_log     {c.UsageRows} rows, {c.UsageRowsWithCost} with a cost (Σ {c.UsageCostUsd} USD)"));
        w.WriteLine(string.Create(inv, $"  redis         Σ balance {c.RedisBalanceMicros} µ$; {c.OpenReservations} open reservations (Σ {c.ReservedMicros} µ$), {c.ExpiredReservations} past lease + grace, {c.LeftoverReservationMembers} leftover zset members; {c.OpenLeases} quota leases (Σ {c.LeasedMicros} µ$ outstanding)"));
        w.WriteLine(string.Create(inv, $"  usage stream  {c.StreamEntries} entries: {c.PendingUsageEvents} pending (Σ {c.PendingMicros} µ$), {c.PersistedAwaitingAck} persisted awaiting ack"));
        w.WriteLine(string.Create(inv, $"  rounding      {c.RoundingAllowanceMicros} µ$ allowed in total (sub-micro-dollar rounding of the ledger's entries)"));
        w.WriteLine(string.Create(inv, $"  attempts      {report.Attempts}"));
        if (report.Clean)
        {
            w.WriteLine("violations: none");
            w.WriteLine(string.Create(inv, $"result: clean (exit {exitCode})"));
            return;
        }
        var total = report.ViolationCounts.Values.Sum();
        w.WriteLine(string.Create(inv, $"violations: {total} ({string.Join(", ", report.ViolationCounts.Select(kv => $"{kv.Key} {kv.Value}"))})"));
        foreach (var v in report.Violations)
        {
            var who = new List<string>();
            if (v.User is not null) who.Add($"user {v.User}");
            if (v.UserId is not null) who.Add(v.User is null ? $"user {v.UserId}" : $"({v.UserId})");
            if (v.RequestId is not null) who.Add($"request {v.RequestId}");
            w.WriteLine($"  {v.Kind}  {string.Join(' ', who)}: {v.Detail}");
        }
        var listed = report.Violations.Count;
        if (listed < total) w.WriteLine(string.Create(inv, $"  … {total - listed} more not listed (--max-listed)"));
        w.WriteLine(string.Create(inv, $"result: {total} violation(s) (exit {exitCode})"));
    }
}
