namespace Gateway.Portal.Tests.Infrastructure;

/// <summary>
/// Real time plus an offset the test can move forward (lockout ends, sessions idle out) without
/// freezing the clock: time keeps flowing, timers keep real time.
/// </summary>
public sealed class ShiftedTimeProvider : TimeProvider
{
    private long _offsetTicks;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow().AddTicks(Interlocked.Read(ref _offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
}
