using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;

namespace Gateway.Kubernetes.Tests.Runtime;

public sealed class EventFilterTests
{
    private static ObjectEntry<Widget> Entry(long generation, Action<ObjectMetadata>? change = null)
    {
        var meta = new ObjectMetadata { Name = "w", Namespace = "default", Generation = generation, ResourceVersion = "1" };
        change?.Invoke(meta);
        return new ObjectEntry<Widget>(new Widget { Metadata = meta }, meta);
    }

    [Fact]
    public void Passes_generation_changes_and_drops_metadata_only_updates_by_default()
    {
        var filter = new GenerationChangedFilter<Widget>();

        Assert.True(filter.OnUpdate(Entry(1), Entry(2)));
        Assert.False(filter.OnUpdate(Entry(1), Entry(1, m => m.Annotations = new() { ["a"] = "b" })));
        Assert.False(filter.OnUpdate(Entry(1), Entry(1, m => m.Finalizers = ["f"])));
        Assert.True(filter.OnUpdate(Entry(1), Entry(1, m => m.DeletionTimestamp = DateTimeOffset.UtcNow)));
    }

    [Fact]
    public void Opt_ins_pass_finalizer_and_selected_annotation_changes()
    {
        var filter = new GenerationChangedFilter<Widget> { IncludeFinalizerChanges = true, IncludeAnnotationChanges = true, AnnotationKeys = ["tokengate.io/rotate"] };

        Assert.True(filter.OnUpdate(Entry(1), Entry(1, m => m.Finalizers = ["f"])));
        Assert.True(filter.OnUpdate(Entry(1), Entry(1, m => m.Annotations = new() { ["tokengate.io/rotate"] = "now" })));
        Assert.False(filter.OnUpdate(Entry(1), Entry(1, m => m.Annotations = new() { ["kubectl.kubernetes.io/last-applied-configuration"] = "{}" })));
    }
}
