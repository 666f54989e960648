using Gateway.Portal.Auth;
using Gateway.Portal.Charts;
using Gateway.Portal.Usage;
using Microsoft.AspNetCore.Mvc.RazorPages;

namespace Gateway.Portal.Pages;

/// <summary>The dashboard: balance, budget and period, limits, 30-day charts, keys at a glance.</summary>
public sealed class IndexModel(DashboardQueries dashboard, TimeProvider time) : PageModel
{
    public Dashboard? Data { get; private set; }
    public DateTimeOffset Now { get; private set; }

    public async Task OnGetAsync(CancellationToken ct)
    {
        Now = time.GetUtcNow();
        Data = await dashboard.LoadAsync(User.UserId(), Now, ct);
    }

    /// <summary>Chart points of the daily series; <paramref name="tokens"/> picks tokens instead of spend.</summary>
    public IReadOnlyList<ChartPoint> Daily(bool tokens) => Data is null ? [] : Data.Days.Select(d => tokens
        ? new ChartPoint(d.Day.ToString("MM-dd", System.Globalization.CultureInfo.InvariantCulture), d.Tokens, DisplayFormat.Compact(d.Tokens))
        : new ChartPoint(d.Day.ToString("MM-dd", System.Globalization.CultureInfo.InvariantCulture), (double)d.Cost, DisplayFormat.Usd(d.Cost))).ToList();

    public static IReadOnlyList<ChartPoint> Bars(IReadOnlyList<Breakdown> items) =>
        items.Select(b => new ChartPoint(b.Name.Length == 0 ? "—" : b.Name, (double)b.Cost, DisplayFormat.Usd(b.Cost))).ToList();

    /// <summary>What is left of a daily limit given today's recorded use, or null without a limit.</summary>
    public static long? Left(long? limit, long used) => limit is { } l ? Math.Max(0, l - used) : null;
}
