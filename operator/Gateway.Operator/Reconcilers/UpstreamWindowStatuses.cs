using Gateway.Core.Projection;
using Gateway.Core.Resources;

namespace Gateway.Operator.Reconcilers;

/// <summary>An UpstreamAccount's status.windows and window usage ratios from its rolling window totals.</summary>
public static class UpstreamWindowStatuses
{
    /// <summary>The 5h, 1d and 7d windows with their figures, and the limits and headroom of those in <paramref name="limits"/>.
    /// The minute window is left out: it would be stale between measurements (and the per-minute limits have their own counts).</summary>
    public static List<UpstreamWindowStatus> From(IReadOnlyList<UpstreamWindow>? limits, WindowTotals totals)
    {
        var result = new List<UpstreamWindowStatus>(UpstreamWindows.Periods.Length - 1);
        for (var i = 1; i < UpstreamWindows.Periods.Length; i++)
        {
            var period = UpstreamWindows.Periods[i].Name;
            var status = new UpstreamWindowStatus { Period = period, Requests = totals.Requests[i], Tokens = totals.Tokens[i] };
            if (limits?.FirstOrDefault(l => l.Period == period) is { } limit)
            {
                status.RequestsLimit = limit.Requests;
                status.TokensLimit = limit.Tokens;
                // Rounded so that status does not change with every request's last digits.
                status.Headroom = Math.Round(UpstreamWindows.Headroom([limit], totals), 3);
            }
            result.Add(status);
        }
        return result;
    }

    /// <summary>(window, used ratio) of the windows with a limit: 1 − headroom, so 1 means exhausted.</summary>
    public static IReadOnlyList<(string Window, double Ratio)> UsageRatios(IEnumerable<UpstreamWindowStatus> windows) =>
        [.. windows.Where(w => w.Headroom is not null).Select(w => (w.Period, Math.Round(1 - w.Headroom!.Value, 3)))];
}
