using System.Globalization;
using System.Reflection;

namespace Gateway.Kubernetes.Runtime;

/// <summary>
/// metav1.Condition rules (apimachinery's meta.SetStatusCondition) for any condition class shaped like
/// metav1.Condition — properties Type, Status, Reason, Message, ObservedGeneration, LastTransitionTime —
/// so resource libraries keep their own condition type. lastTransitionTime moves only when Status changes.
/// </summary>
public static class Conditions
{
    public const string True = "True";
    public const string False = "False";
    public const string Unknown = "Unknown";

    /// <summary>Sets or adds the condition; returns true when anything changed.</summary>
    public static bool Set<TCondition>(IList<TCondition> conditions, string type, string status, string reason, string message, long? observedGeneration, DateTimeOffset now)
        where TCondition : class, new()
    {
        var a = Accessor<TCondition>.Instance;
        var existing = conditions.FirstOrDefault(c => a.GetString(c, a.Type) == type);
        if (existing is null)
        {
            var c = new TCondition();
            a.SetString(c, a.Type, type);
            a.SetString(c, a.Status, status);
            a.SetString(c, a.Reason, reason);
            a.SetString(c, a.Message, message);
            a.SetGeneration(c, observedGeneration);
            a.SetTime(c, now);
            conditions.Add(c);
            return true;
        }
        var changed = false;
        if (a.GetString(existing, a.Status) != status)
        {
            a.SetString(existing, a.Status, status);
            a.SetTime(existing, now);
            changed = true;
        }
        if (a.GetString(existing, a.Reason) != reason) { a.SetString(existing, a.Reason, reason); changed = true; }
        if (a.GetString(existing, a.Message) != message) { a.SetString(existing, a.Message, message); changed = true; }
        if (a.GetGeneration(existing) != observedGeneration) { a.SetGeneration(existing, observedGeneration); changed = true; }
        return changed;
    }

    public static TCondition? Find<TCondition>(IEnumerable<TCondition>? conditions, string type) where TCondition : class, new()
    {
        var a = Accessor<TCondition>.Instance;
        return conditions?.FirstOrDefault(c => a.GetString(c, a.Type) == type);
    }

    public static bool IsTrue<TCondition>(IEnumerable<TCondition>? conditions, string type) where TCondition : class, new() =>
        Find(conditions, type) is { } c && Accessor<TCondition>.Instance.GetString(c, Accessor<TCondition>.Instance.Status) == True;

    /// <summary>Removes the condition; returns true if it was there.</summary>
    public static bool Remove<TCondition>(IList<TCondition> conditions, string type) where TCondition : class, new()
    {
        var c = Find(conditions, type);
        return c is not null && conditions.Remove(c);
    }

    private sealed class Accessor<TCondition>
    {
        public static readonly Accessor<TCondition> Instance = new();

        public readonly PropertyInfo Type = Prop("Type");
        public readonly PropertyInfo Status = Prop("Status");
        public readonly PropertyInfo Reason = Prop("Reason");
        public readonly PropertyInfo Message = Prop("Message");
        private readonly PropertyInfo _generation = Prop("ObservedGeneration");
        private readonly PropertyInfo _time = Prop("LastTransitionTime");

        private static PropertyInfo Prop(string name) =>
            typeof(TCondition).GetProperty(name, BindingFlags.Public | BindingFlags.Instance)
            ?? throw new InvalidOperationException($"{typeof(TCondition).Name} has no {name} property; it must be shaped like metav1.Condition.");

        public string? GetString(TCondition c, PropertyInfo p) => p.GetValue(c)?.ToString();

        public void SetString(TCondition c, PropertyInfo p, string value)
        {
            if (p.PropertyType.IsEnum) p.SetValue(c, Enum.Parse(p.PropertyType, value));
            else p.SetValue(c, value);
        }

        public long? GetGeneration(TCondition c) => _generation.GetValue(c) is { } v ? Convert.ToInt64(v, CultureInfo.InvariantCulture) : null;

        public void SetGeneration(TCondition c, long? value)
        {
            if (value is null && Nullable.GetUnderlyingType(_generation.PropertyType) is null) value = 0;
            _generation.SetValue(c, value);
        }

        public void SetTime(TCondition c, DateTimeOffset now)
        {
            // metav1.Time has second precision; keeping it so avoids spurious diffs against what the server returns.
            var t = new DateTimeOffset(now.UtcTicks - now.UtcTicks % TimeSpan.TicksPerSecond, TimeSpan.Zero);
            var type = Nullable.GetUnderlyingType(_time.PropertyType) ?? _time.PropertyType;
            object value = type == typeof(DateTime) ? t.UtcDateTime
                : type == typeof(string) ? t.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)
                : t;
            _time.SetValue(c, value);
        }
    }
}
