using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests.Runtime;

public sealed class EventRecorderTests : IAsyncLifetime
{
    private KubeTestContext _k = null!;

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync() => await _k.DisposeAsync();

    private async Task<ObjectReference> WidgetRef(string name)
    {
        var w = await _k.Widgets.CreateAsync(Widget.Named(name));
        return EventRecorder.ReferenceTo(KubeTestContext.WidgetDefinition, w.Metadata);
    }

    [Fact]
    public async Task Records_an_event_about_the_involved_object()
    {
        var recorder = new EventRecorder(_k.Client, new EventRecorderOptions { Component = "tokengate-operator", Instance = "pod-1" });
        var involved = await WidgetRef("w");

        Assert.True(await recorder.WarningAsync(involved, "OwnerMissing", "UserQuota demo not found"));

        var ev = Assert.Single(_k.Server.ListObjects(FakeApiServer.Events, "default"));
        Assert.Equal("Warning", ev["type"]!.GetValue<string>());
        Assert.Equal("OwnerMissing", ev["reason"]!.GetValue<string>());
        Assert.Equal("Widget", ev["involvedObject"]!["kind"]!.GetValue<string>());
        Assert.Equal("w", ev["involvedObject"]!["name"]!.GetValue<string>());
        Assert.Equal(involved.Uid, ev["involvedObject"]!["uid"]!.GetValue<string>());
        Assert.Equal("tokengate-operator", ev["source"]!["component"]!.GetValue<string>());
        Assert.Equal(1, ev["count"]!.GetValue<int>());
        Assert.StartsWith("w.", ev["metadata"]!["name"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Identical_events_are_aggregated_into_one_with_a_count()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var recorder = new EventRecorder(_k.Client, new EventRecorderOptions { Component = "op", TimeProvider = clock });
        var involved = await WidgetRef("agg");

        await recorder.NormalAsync(involved, "Issued", "key issued");
        clock.Advance(TimeSpan.FromMinutes(1));
        await recorder.NormalAsync(involved, "Issued", "key issued");
        clock.Advance(TimeSpan.FromMinutes(1));
        await recorder.NormalAsync(involved, "Issued", "key issued");
        await recorder.NormalAsync(involved, "Rotated", "key rotated");

        var events = _k.Server.ListObjects(FakeApiServer.Events, "default");
        Assert.Equal(2, events.Count);
        var issued = events.Single(e => e["reason"]!.GetValue<string>() == "Issued");
        Assert.Equal(3, issued["count"]!.GetValue<int>());
        Assert.Equal("2026-01-01T00:00:00Z", issued["firstTimestamp"]!.GetValue<string>());
        Assert.Equal("2026-01-01T00:02:00Z", issued["lastTimestamp"]!.GetValue<string>());
        Assert.Equal(2, _k.Server.CountRequests("PATCH", "/events/"));
    }

    [Fact]
    public async Task Spam_filter_limits_events_per_object_and_refills_over_time()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var recorder = new EventRecorder(_k.Client, new EventRecorderOptions { Component = "op", Burst = 3, RefillInterval = TimeSpan.FromMinutes(5), TimeProvider = clock });
        var noisy = await WidgetRef("noisy");
        var quiet = await WidgetRef("quiet");

        var results = new List<bool>();
        for (var i = 0; i < 5; i++) results.Add(await recorder.WarningAsync(noisy, "Failed", $"attempt {i}"));
        Assert.Equal([true, true, true, false, false], results);
        Assert.True(await recorder.NormalAsync(quiet, "Ok", "another object has its own bucket"));

        clock.Advance(TimeSpan.FromMinutes(5));
        Assert.True(await recorder.WarningAsync(noisy, "Failed", "after refill"));
        Assert.False(await recorder.WarningAsync(noisy, "Failed", "again"));
        Assert.Equal(5, _k.Server.ListObjects(FakeApiServer.Events, "default").Count);
    }

    [Fact]
    public async Task An_aggregated_event_that_was_deleted_is_created_again()
    {
        var recorder = new EventRecorder(_k.Client, new EventRecorderOptions { Component = "op" });
        var involved = await WidgetRef("gone");
        await recorder.NormalAsync(involved, "Issued", "key issued");
        var events = _k.Client.Resource<Event>(ResourceDefinition.Events);
        var first = Assert.Single((await events.ListAsync("default")).Items);
        await events.DeleteAsync("default", first.Metadata.Name!);

        Assert.True(await recorder.NormalAsync(involved, "Issued", "key issued"));

        var again = Assert.Single((await events.ListAsync("default")).Items);
        Assert.NotEqual(first.Metadata.Name, again.Metadata.Name);
        Assert.Equal(1, again.Count);
    }
}
