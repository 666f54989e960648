namespace Gateway.Core.Pricing;

/// <summary>Conversions between USD decimals and Redis' integer micro-dollars.</summary>
public static class Money
{
    public const decimal MicrosPerDollar = 1_000_000m;

    /// <summary>USD to micro-dollars, rounding up so Redis never under-counts a charge.</summary>
    public static long ToMicrosCeiling(decimal usd) => (long)decimal.Ceiling(usd * MicrosPerDollar);

    /// <summary>USD to micro-dollars, rounding down (for credits, so Redis never over-counts a balance).</summary>
    public static long ToMicrosFloor(decimal usd) => (long)decimal.Floor(usd * MicrosPerDollar);

    public static decimal FromMicros(long micros) => micros / MicrosPerDollar;

    /// <summary>Rounds to the 8 decimals of numeric(20,8).</summary>
    public static decimal RoundUsd(decimal usd) => decimal.Round(usd, 8, MidpointRounding.AwayFromZero);
}
