using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests.Client;

public sealed class ResourceClientTests : IAsyncLifetime
{
    private KubeTestContext _k = null!;

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync() => await _k.DisposeAsync();

    [Fact]
    public async Task Create_sets_uid_generation_and_resource_version_and_get_returns_it()
    {
        var created = await _k.Widgets.CreateAsync(Widget.Named("w1"));

        Assert.False(string.IsNullOrEmpty(created.Metadata.Uid));
        Assert.Equal(1, created.Metadata.Generation);
        Assert.NotNull(created.Metadata.CreationTimestamp);
        var fetched = await _k.Widgets.GetAsync("default", "w1");
        Assert.Equal(created.Metadata.ResourceVersion, fetched.Metadata.ResourceVersion);
        Assert.Equal("red", fetched.Spec.Color);
    }

    [Fact]
    public async Task Get_of_missing_object_throws_not_found_with_status_details()
    {
        var e = await Assert.ThrowsAsync<KubernetesNotFoundException>(() => _k.Widgets.GetAsync("default", "nope"));

        Assert.Equal(404, e.Code);
        Assert.Equal("NotFound", e.Reason);
        Assert.Equal("nope", e.Status.Details?.Name);
        Assert.Null(await _k.Widgets.TryGetAsync("default", "nope"));
    }

    [Fact]
    public async Task Create_of_existing_name_throws_already_exists()
    {
        await _k.Widgets.CreateAsync(Widget.Named("dup"));

        var e = await Assert.ThrowsAsync<KubernetesAlreadyExistsException>(() => _k.Widgets.CreateAsync(Widget.Named("dup")));
        Assert.Equal(409, e.Code);
    }

    [Fact]
    public async Task Update_with_stale_resource_version_throws_conflict()
    {
        var original = await _k.Widgets.CreateAsync(Widget.Named("c1"));
        var first = await _k.Widgets.GetAsync("default", "c1");
        first.Spec.Size = 2;
        await _k.Widgets.UpdateAsync(first);

        original.Spec.Size = 3;
        var e = await Assert.ThrowsAsync<KubernetesConflictException>(() => _k.Widgets.UpdateAsync(original));
        Assert.Equal(409, e.Code);
        Assert.Equal(2, (await _k.Widgets.GetAsync("default", "c1")).Spec.Size);
    }

    [Fact]
    public async Task Custom_resources_reject_updates_without_a_resource_version_like_the_real_server()
    {
        await _k.Widgets.CreateAsync(Widget.Named("u1"));
        var blind = Widget.Named("u1", size: 3);

        var e = await Assert.ThrowsAsync<KubernetesInvalidException>(() => _k.Widgets.UpdateAsync(blind));
        Assert.Equal("metadata.resourceVersion", Assert.Single(e.Causes).Field);
        // A merge patch without a resourceVersion applies to whatever is current.
        Assert.Equal(3, (await _k.Widgets.PatchAsync("default", "u1", new { spec = new { size = 3 } })).Spec.Size);
    }

    [Fact]
    public async Task Generation_is_bumped_only_by_spec_changes()
    {
        var w = await _k.Widgets.CreateAsync(Widget.Named("g1"));
        w.Metadata.Labels = new() { ["team"] = "a" };
        w = await _k.Widgets.UpdateAsync(w);
        Assert.Equal(1, w.Metadata.Generation);

        w.Status = new WidgetStatus { Phase = "Ready" };
        w = await _k.Widgets.UpdateStatusAsync(w);
        Assert.Equal(1, w.Metadata.Generation);

        w.Spec.Color = "blue";
        w = await _k.Widgets.UpdateAsync(w);
        Assert.Equal(2, w.Metadata.Generation);

        w = await _k.Widgets.PatchAsync("default", "g1", new { spec = new { size = 9 } });
        Assert.Equal(3, w.Metadata.Generation);
        Assert.Equal("blue", w.Spec.Color);
    }

    [Fact]
    public async Task Status_subresource_is_isolated_from_the_main_resource()
    {
        var w = Widget.Named("s1");
        w.Status = new WidgetStatus { Phase = "IgnoredOnCreate" };
        w = await _k.Widgets.CreateAsync(w);
        Assert.Null(w.Status);

        // A main-resource update carries a status change that must be dropped.
        w.Status = new WidgetStatus { Phase = "Sneaky" };
        w.Spec.Size = 5;
        w = await _k.Widgets.UpdateAsync(w);
        Assert.Null(w.Status);
        Assert.Equal(5, w.Spec.Size);

        // A status update carries a spec change that must be dropped.
        w.Status = new WidgetStatus { Phase = "Ready", ObservedGeneration = 2 };
        w.Spec.Size = 100;
        w = await _k.Widgets.UpdateStatusAsync(w);
        Assert.Equal("Ready", w.Status?.Phase);
        Assert.Equal(5, w.Spec.Size);

        w = await _k.Widgets.PatchStatusAsync("default", "s1", new JsonObject { ["status"] = new JsonObject { ["phase"] = "Patched" }, ["spec"] = new JsonObject { ["size"] = 77 } });
        Assert.Equal("Patched", w.Status?.Phase);
        Assert.Equal(2, w.Status?.ObservedGeneration);
        Assert.Equal(5, w.Spec.Size);
    }

    [Fact]
    public async Task Merge_patch_removes_fields_set_to_null_and_honours_resource_version_precondition()
    {
        var w = Widget.Named("p1");
        w.Metadata.Labels = new() { ["a"] = "1", ["b"] = "2" };
        w = await _k.Widgets.CreateAsync(w);

        var patched = await _k.Widgets.PatchAsync("default", "p1", new JsonObject { ["metadata"] = new JsonObject { ["labels"] = new JsonObject { ["a"] = null, ["c"] = "3" } } });
        Assert.Equal(new Dictionary<string, string> { ["b"] = "2", ["c"] = "3" }, patched.Metadata.Labels);

        var stale = new JsonObject { ["metadata"] = new JsonObject { ["resourceVersion"] = w.Metadata.ResourceVersion }, ["spec"] = new JsonObject { ["size"] = 4 } };
        await Assert.ThrowsAsync<KubernetesConflictException>(() => _k.Widgets.PatchAsync("default", "p1", stale));
    }

    [Fact]
    public async Task Delete_with_finalizers_only_marks_and_removing_the_last_finalizer_deletes()
    {
        var w = Widget.Named("f1");
        w.Metadata.Finalizers = ["test/one", "test/two"];
        await _k.Widgets.CreateAsync(w);

        var marked = await _k.Widgets.DeleteAsync("default", "f1");
        Assert.NotNull(marked?.Metadata.DeletionTimestamp);
        var current = await _k.Widgets.GetAsync("default", "f1");
        Assert.NotNull(current.Metadata.DeletionTimestamp);

        // No new finalizers once deletion started.
        current.Metadata.Finalizers = ["test/one", "test/two", "test/three"];
        await Assert.ThrowsAsync<KubernetesInvalidException>(() => _k.Widgets.UpdateAsync(current));

        current = await _k.Widgets.GetAsync("default", "f1");
        current.Metadata.Finalizers = ["test/two"];
        current = await _k.Widgets.UpdateAsync(current);
        Assert.NotNull(await _k.Widgets.TryGetAsync("default", "f1"));

        current.Metadata.Finalizers = [];
        await _k.Widgets.UpdateAsync(current);
        Assert.Null(await _k.Widgets.TryGetAsync("default", "f1"));
    }

    [Fact]
    public async Task Delete_preconditions_are_enforced()
    {
        var w = await _k.Widgets.CreateAsync(Widget.Named("d1"));

        await Assert.ThrowsAsync<KubernetesConflictException>(() =>
            _k.Widgets.DeleteAsync("default", "d1", new DeleteOptions { Preconditions = new Preconditions(Uid: "other-uid") }));
        await Assert.ThrowsAsync<KubernetesConflictException>(() =>
            _k.Widgets.DeleteAsync("default", "d1", new DeleteOptions { Preconditions = new Preconditions(ResourceVersion: "1") }));
        Assert.NotNull(await _k.Widgets.TryGetAsync("default", "d1"));

        await _k.Widgets.DeleteAsync("default", "d1", new DeleteOptions { Preconditions = new Preconditions(w.Metadata.Uid, w.Metadata.ResourceVersion), PropagationPolicy = "Background" });
        Assert.Null(await _k.Widgets.TryGetAsync("default", "d1"));
        await Assert.ThrowsAsync<KubernetesNotFoundException>(() => _k.Widgets.DeleteAsync("default", "d1"));
    }

    [Fact]
    public async Task Validation_failure_surfaces_as_invalid_with_causes()
    {
        _k.Server.SetValidator(KubeTestContext.WidgetType, o =>
            o["spec"]?["size"]?.GetValue<int>() < 0 ? [new FakeValidationCause("spec.size", "must be >= 0")] : null);

        var e = await Assert.ThrowsAsync<KubernetesInvalidException>(() => _k.Widgets.CreateAsync(Widget.Named("bad", size: -1)));

        Assert.Equal(422, e.Code);
        var cause = Assert.Single(e.Causes);
        Assert.Equal("spec.size", cause.Field);
        Assert.Contains("must be >= 0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Forbidden_and_server_errors_map_to_typed_exceptions()
    {
        _k.Server.InjectFailure(403, method: "GET");
        await Assert.ThrowsAsync<KubernetesForbiddenException>(() => _k.Widgets.ListAsync("default"));

        _k.Server.InjectFailure(500, method: "GET");
        var e = await Assert.ThrowsAsync<KubernetesApiException>(() => _k.Widgets.ListAsync("default"));
        Assert.Equal(500, e.Code);
    }

    [Fact]
    public async Task Throttled_requests_with_retry_after_are_resent()
    {
        _k.Server.InjectFailure(429, method: "POST", retryAfterSeconds: 1);

        var created = await _k.Widgets.CreateAsync(Widget.Named("throttled"));

        Assert.Equal("throttled", created.Metadata.Name);
        Assert.Equal(2, _k.Server.CountRequests("POST", "/widgets"));
        _k.Server.InjectFailure(429, method: "GET");
        var e = await Assert.ThrowsAsync<KubernetesApiException>(() => _k.Widgets.GetAsync("default", "throttled"));
        Assert.Equal(429, e.Code);
    }

    [Fact]
    public async Task List_filters_by_label_selector_and_pages_with_continue()
    {
        for (var i = 0; i < 5; i++)
        {
            var w = Widget.Named($"l{i}");
            w.Metadata.Labels = new() { ["tier"] = i % 2 == 0 ? "gold" : "silver", ["idx"] = i.ToString(System.Globalization.CultureInfo.InvariantCulture) };
            if (i == 4) w.Metadata.Labels["special"] = "yes";
            await _k.Widgets.CreateAsync(w);
        }
        await _k.Widgets.CreateAsync(Widget.Named("other-ns", ns: "other"));

        Assert.Equal(3, (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "tier=gold" })).Entries.Count);
        Assert.Equal(2, (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "tier!=gold" })).Entries.Count);
        Assert.Equal(3, (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "idx in (1,2,3)" })).Entries.Count);
        Assert.Equal(3, (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "idx notin (1,2)" })).Entries.Count);
        Assert.Equal(["l4"], (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "special" })).Items.Select(w => w.Metadata.Name));
        Assert.Equal(4, (await _k.Widgets.ListAsync("default", new ListOptions { LabelSelector = "!special" })).Entries.Count);
        Assert.Equal(6, (await _k.Widgets.ListAsync()).Entries.Count);

        var page1 = await _k.Widgets.ListAsync("default", new ListOptions { Limit = 2 });
        Assert.Equal(2, page1.Entries.Count);
        Assert.NotNull(page1.Continue);
        var all = await _k.Widgets.ListAllAsync("default", pageSize: 2);
        Assert.Equal(5, all.Entries.Count);
        Assert.Equal(page1.ResourceVersion, all.ResourceVersion);

        _k.Server.CompactHistory();
        await _k.Widgets.CreateAsync(Widget.Named("later"));
        _k.Server.CompactHistory();
        await Assert.ThrowsAsync<KubernetesGoneException>(() => _k.Widgets.ListAsync("default", new ListOptions { Limit = 2, Continue = page1.Continue }));
    }

    [Fact]
    public async Task Watch_streams_changes_after_a_resource_version_and_sends_bookmarks()
    {
        var list = await _k.Widgets.ListAsync("default");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var seen = new List<WatchEvent<Widget>>();
        var watching = Task.Run(async () =>
        {
            await foreach (var ev in _k.Widgets.WatchAsync("default", new WatchOptions { ResourceVersion = list.ResourceVersion }, cts.Token))
            {
                lock (seen) seen.Add(ev);
                if (ev.Type == WatchEventType.Deleted) break;
            }
        });

        var w = await _k.Widgets.CreateAsync(Widget.Named("w"));
        w.Spec.Size = 2;
        await _k.Widgets.UpdateAsync(w);
        await Gateway.Testing.Eventually.TrueAsync(() => Task.FromResult(seen.ToArray().Any(e => e.Type == WatchEventType.Bookmark)), "a bookmark");
        await _k.Widgets.DeleteAsync("default", "w");
        await watching;

        var types = seen.Where(e => e.Type != WatchEventType.Bookmark).Select(e => e.Type).ToArray();
        Assert.Equal([WatchEventType.Added, WatchEventType.Modified, WatchEventType.Deleted], types);
        Assert.Equal(2, seen.First(e => e.Type == WatchEventType.Modified).Object!.Spec.Size);
        var bookmark = seen.First(e => e.Type == WatchEventType.Bookmark);
        Assert.Null(bookmark.Object);
        Assert.False(string.IsNullOrEmpty(bookmark.Metadata.ResourceVersion));
    }

    [Fact]
    public async Task Watch_from_a_compacted_resource_version_throws_gone()
    {
        var list = await _k.Widgets.ListAsync("default");
        await _k.Widgets.CreateAsync(Widget.Named("x"));
        _k.Server.CompactHistory();

        await Assert.ThrowsAsync<KubernetesGoneException>(async () =>
        {
            await foreach (var _ in _k.Widgets.WatchAsync("default", new WatchOptions { ResourceVersion = list.ResourceVersion }))
            {
            }
        });
    }

    [Fact]
    public async Task Core_types_round_trip_secret_data_as_bytes()
    {
        var secrets = _k.Client.Resource<Secret>(ResourceDefinition.Secrets);
        await secrets.CreateAsync(new Secret { Metadata = new ObjectMetadata { Name = "s", Namespace = "default" }, Data = new() { ["KEY"] = "hello"u8.ToArray() } });

        var raw = _k.Server.GetObject(FakeApiServer.Secrets, "default", "s")!;
        Assert.Equal(Convert.ToBase64String("hello"u8.ToArray()), raw["data"]!["KEY"]!.GetValue<string>());
        var back = await secrets.GetAsync("default", "s");
        Assert.Equal("hello"u8.ToArray(), back.Data!["KEY"]);
    }
}
