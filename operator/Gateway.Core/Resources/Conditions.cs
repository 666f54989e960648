namespace Gateway.Core.Resources;

/// <summary>metav1.Condition rules: lastTransitionTime moves only when the status changes.</summary>
public static class Conditions
{
    public const string True = "True";
    public const string False = "False";
    public const string Unknown = "Unknown";

    /// <summary>Sets or updates a condition. Returns true when anything changed.</summary>
    public static bool Set(List<Condition> conditions, string type, string status, string reason, string message, long? observedGeneration, DateTimeOffset now)
    {
        var existing = conditions.Find(c => c.Type == type);
        if (existing is null)
        {
            conditions.Add(new Condition { Type = type, Status = status, Reason = reason, Message = message, ObservedGeneration = observedGeneration, LastTransitionTime = Truncate(now) });
            return true;
        }
        var changed = false;
        if (existing.Status != status) { existing.Status = status; existing.LastTransitionTime = Truncate(now); changed = true; }
        if (existing.Reason != reason) { existing.Reason = reason; changed = true; }
        if (existing.Message != message) { existing.Message = message; changed = true; }
        if (existing.ObservedGeneration != observedGeneration) { existing.ObservedGeneration = observedGeneration; changed = true; }
        return changed;
    }

    public static Condition? Find(IEnumerable<Condition>? conditions, string type) => conditions?.FirstOrDefault(c => c.Type == type);

    public static bool IsTrue(IEnumerable<Condition>? conditions, string type) => Find(conditions, type)?.Status == True;

    // Kubernetes serialises metav1.Time with second precision.
    private static DateTimeOffset Truncate(DateTimeOffset t) => new(t.Ticks - t.Ticks % TimeSpan.TicksPerSecond, t.Offset);
}
