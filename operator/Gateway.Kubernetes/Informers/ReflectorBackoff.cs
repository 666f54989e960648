namespace Gateway.Kubernetes.Informers;

/// <summary>
/// client-go's reflector backoff: starts at 0.8 s, doubles up to 30 s, and starts over once the connection
/// has been healthy (no backoff asked for) for the reset period (2 min). Jitter adds up to factor × delay.
/// </summary>
public sealed class ReflectorBackoff(TimeSpan initial, TimeSpan max, TimeSpan resetAfter, double jitter, TimeProvider timeProvider)
{
    private TimeSpan _current;
    private DateTimeOffset _lastBackoff = DateTimeOffset.MinValue;

    public static ReflectorBackoff Default(TimeProvider? timeProvider = null) =>
        new(TimeSpan.FromMilliseconds(800), TimeSpan.FromSeconds(30), TimeSpan.FromMinutes(2), 1.0, timeProvider ?? TimeProvider.System);

    /// <summary>The delay before the next attempt (without jitter), after recording a failure.</summary>
    public TimeSpan NextBase()
    {
        var now = timeProvider.GetUtcNow();
        if (_current == TimeSpan.Zero || now - _lastBackoff > resetAfter) _current = initial;
        else _current = TimeSpan.FromTicks(Math.Min(_current.Ticks * 2, max.Ticks));
        _lastBackoff = now;
        return _current;
    }

    /// <summary>The delay with jitter applied.</summary>
    public TimeSpan Next()
    {
        var b = NextBase();
        return jitter > 0 ? b + TimeSpan.FromTicks((long)(b.Ticks * jitter * Random.Shared.NextDouble())) : b;
    }
}
