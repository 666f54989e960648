namespace Gateway.Kubernetes.Tests;

/// <summary>A clock tests move by hand (only GetUtcNow; timers stay real).</summary>
public sealed class ManualTimeProvider(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}
