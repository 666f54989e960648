namespace Gateway.Portal.BrowserTests.Infrastructure;

/// <summary>Real time plus an offset the test can move forward (the portal's clock: a fresh TOTP step without waiting 30 s).</summary>
public sealed class ShiftedTimeProvider : TimeProvider
{
    private long _offsetTicks;

    public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + TimeSpan.FromTicks(Interlocked.Read(ref _offsetTicks));

    public void Advance(TimeSpan by) => Interlocked.Add(ref _offsetTicks, by.Ticks);
}
