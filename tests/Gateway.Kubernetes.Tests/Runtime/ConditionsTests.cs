using Gateway.Kubernetes.Runtime;

namespace Gateway.Kubernetes.Tests.Runtime;

public sealed class ConditionsTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Adding_a_condition_sets_every_field()
    {
        var list = new List<WidgetCondition>();

        Assert.True(Conditions.Set(list, "Ready", Conditions.False, "Pending", "waiting", 3, T0.AddMilliseconds(700)));

        var c = Assert.Single(list);
        Assert.Equal(("Ready", "False", "Pending", "waiting", 3L), (c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration!.Value));
        Assert.Equal(T0, c.LastTransitionTime);
    }

    [Fact]
    public void Last_transition_time_moves_only_when_status_changes()
    {
        var list = new List<WidgetCondition>();
        Conditions.Set(list, "Ready", Conditions.False, "Pending", "waiting", 1, T0);

        Assert.True(Conditions.Set(list, "Ready", Conditions.False, "StillPending", "still waiting", 2, T0.AddMinutes(1)));
        Assert.Equal(T0, list[0].LastTransitionTime);
        Assert.Equal(2, list[0].ObservedGeneration);
        Assert.Equal("StillPending", list[0].Reason);

        Assert.True(Conditions.Set(list, "Ready", Conditions.True, "Issued", "ok", 2, T0.AddMinutes(2)));
        Assert.Equal(T0.AddMinutes(2), list[0].LastTransitionTime);
        Assert.True(Conditions.IsTrue(list, "Ready"));
    }

    [Fact]
    public void Setting_the_same_values_reports_no_change()
    {
        var list = new List<WidgetCondition>();
        Conditions.Set(list, "Ready", Conditions.True, "Issued", "ok", 1, T0);

        Assert.False(Conditions.Set(list, "Ready", Conditions.True, "Issued", "ok", 1, T0.AddHours(1)));
        Assert.Equal(T0, list[0].LastTransitionTime);
        Assert.True(Conditions.Remove(list, "Ready"));
        Assert.Empty(list);
    }
}
