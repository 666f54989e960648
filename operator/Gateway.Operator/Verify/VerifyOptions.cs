using System.Globalization;

namespace Gateway.Operator.Verify;

/// <summary>The verify command's own switches; everything else on its command line is configuration.</summary>
public sealed record VerifyOptions
{
    public bool Json { get; init; }
    public bool Help { get; init; }
    /// <summary>How long checks a live system can fail for a moment are retried before they are reported.</summary>
    public TimeSpan SettleWait { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long past its lease a reservation may stay open before it counts as missed by the sweeper (which
    /// runs every 2 s).</summary>
    public TimeSpan LeaseGrace { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Require a balance exactly at the ledger's per-entry rounding (the lower edge): true of every balance
    /// the operator credited entry by entry, false after it initialised one from a ledger sum (a rebuilt projection).</summary>
    public bool Strict { get; init; }
    /// <summary>Violations listed per kind (all are counted).</summary>
    public int MaxListed { get; init; } = 100;

    /// <summary>Splits <paramref name="args"/> into the command's switches and the configuration arguments left over.</summary>
    public static (VerifyOptions? Options, IReadOnlyList<string> ConfigurationArgs, string? Error) Parse(IReadOnlyList<string> args)
    {
        var o = new VerifyOptions();
        var rest = new List<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var a = args[i];
            string? Value() => i + 1 < args.Count ? args[++i] : null;
            switch (a)
            {
                case "--json": o = o with { Json = true }; break;
                case "-h" or "--help": o = o with { Help = true }; break;
                case "--strict": o = o with { Strict = true }; break;
                case "--settle-wait" or "--lease-grace":
                    var text = Value();
                    if (text is null || ParseDuration(text) is not { } d || d < TimeSpan.Zero)
                        return (null, [], $"{a} needs a duration such as 10s, 500ms, 2m, 1h or 00:00:10 (was '{text}').");
                    o = a == "--settle-wait" ? o with { SettleWait = d } : o with { LeaseGrace = d };
                    break;
                case "--max-listed":
                    var n = Value();
                    if (!int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var max) || max < 1)
                        return (null, [], $"--max-listed needs a positive number (was '{n}').");
                    o = o with { MaxListed = max };
                    break;
                default:
                    if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                        return (null, [], $"unexpected argument '{a}'.");
                    // --Section:Key value or --Section:Key=value: configuration, as for the operator.
                    rest.Add(a);
                    if (!a.Contains('=', StringComparison.Ordinal))
                    {
                        var v = Value();
                        if (v is null) return (null, [], $"{a} needs a value.");
                        rest.Add(v);
                    }
                    break;
            }
        }
        return (o, rest, null);
    }

    internal static TimeSpan? ParseDuration(string text)
    {
        static TimeSpan? Number(string s, Func<double, TimeSpan> unit) =>
            double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v) ? unit(v) : null;
        if (text.EndsWith("ms", StringComparison.Ordinal)) return Number(text[..^2], TimeSpan.FromMilliseconds);
        if (text.EndsWith('s')) return Number(text[..^1], TimeSpan.FromSeconds);
        if (text.EndsWith('m')) return Number(text[..^1], TimeSpan.FromMinutes);
        if (text.EndsWith('h')) return Number(text[..^1], TimeSpan.FromHours);
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var t) ? t : null;
    }
}
