using System.Collections.Concurrent;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Testing;

namespace Gateway.Kubernetes.Tests.Informers;

public sealed class InformerTests : IAsyncLifetime
{
    private static readonly InformerOptions FastOptions = new()
    {
        InitialBackoff = TimeSpan.FromMilliseconds(20),
        MaxBackoff = TimeSpan.FromMilliseconds(100),
        BackoffJitter = 0,
    };

    private readonly CancellationTokenSource _cts = new();
    private KubeTestContext _k = null!;

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        await _k.DisposeAsync();
        _cts.Dispose();
    }

    [Fact]
    public async Task Lists_then_watches_and_delivers_add_update_delete()
    {
        await _k.Widgets.CreateAsync(Widget.Named("before"));
        var informer = new Informer<Widget>(_k.Widgets, FastOptions);
        var log = new ConcurrentQueue<string>();
        informer.AddEventHandler(
            e => log.Enqueue("add " + e.Metadata.Name),
            (o, n) => log.Enqueue($"update {n.Metadata.Name} {o.Object.Spec.Size}->{n.Object.Spec.Size}"),
            e => log.Enqueue("delete " + e.Metadata.Name));
        _ = informer.RunAsync(_cts.Token);

        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(informer.HasSynced);
        Assert.NotNull(informer.Store.Get("default", "before"));

        var w = await _k.Widgets.CreateAsync(Widget.Named("after"));
        w.Spec.Size = 7;
        await _k.Widgets.UpdateAsync(w);
        await _k.Widgets.DeleteAsync("default", "before");

        await Eventually.TrueAsync(() => Task.FromResult(log.Contains("delete before")), "the delete");
        Assert.Equal(["add before", "add after", "update after 1->7", "delete before"], log.ToArray());
        Assert.Null(informer.Store.Get("default", "before"));
        Assert.Equal(7, informer.Store.Get("default", "after")!.Spec.Size);
        Assert.Single(informer.Store.ListByNamespace("default"));
    }

    [Fact]
    public async Task Resumes_dropped_watches_from_the_last_version_without_missing_events()
    {
        var informer = new Informer<Widget>(_k.Widgets, FastOptions);
        var adds = new ConcurrentDictionary<string, int>();
        informer.AddEventHandler(onAdd: e => adds.AddOrUpdate(e.Metadata.Name!, 1, (_, n) => n + 1));
        _ = informer.RunAsync(_cts.Token);
        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(30));

        for (var i = 0; i < 30; i++)
        {
            await _k.Widgets.CreateAsync(Widget.Named($"w{i}"));
            if (i % 5 == 0) _k.Server.DropAllWatches();
        }

        await Eventually.TrueAsync(() => Task.FromResult(informer.Store.Count == 30), "all 30 objects in the cache");
        Assert.All(adds.Values, n => Assert.Equal(1, n));
        Assert.Equal(30, adds.Count);
        // Reconnects resumed from the last resourceVersion: one list only, several watches.
        Assert.Equal(1, informer.ListCount);
        Assert.True(_k.Server.CountRequests("GET", "/widgets", watch: true) > 1);
    }

    [Fact]
    public async Task Relists_on_410_gone_and_emits_the_differences()
    {
        await _k.Widgets.CreateAsync(Widget.Named("stays"));
        await _k.Widgets.CreateAsync(Widget.Named("changes"));
        await _k.Widgets.CreateAsync(Widget.Named("goes"));
        var informer = new Informer<Widget>(_k.Widgets, FastOptions);
        var log = new ConcurrentQueue<string>();
        informer.AddEventHandler(
            e => log.Enqueue("add " + e.Metadata.Name),
            (_, n) => log.Enqueue("update " + n.Metadata.Name),
            e => log.Enqueue("delete " + e.Metadata.Name));
        _ = informer.RunAsync(_cts.Token);
        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(30));
        await Eventually.TrueAsync(() => Task.FromResult(_k.Server.OpenWatchCount == 1), "the watch to open");

        // The informer cannot watch while the world changes and history is compacted behind it.
        _k.Server.InjectFailure(503, times: 100_000, watch: true);
        _k.Server.DropAllWatches();
        var changes = await _k.Widgets.GetAsync("default", "changes");
        changes.Spec.Size = 42;
        await _k.Widgets.UpdateAsync(changes);
        await _k.Widgets.DeleteAsync("default", "goes");
        await _k.Widgets.CreateAsync(Widget.Named("new"));
        _k.Server.CompactHistory();
        _k.Server.ClearInjectedFailures();

        // At least one relist: while the watch fails the informer may relist more than once (how often depends on
        // timing), so the test waits for the final state rather than an exact count of lists.
        await Eventually.TrueAsync(() => Task.FromResult(informer.ListCount >= 2 && informer.Store.Count == 3
            && informer.Store.Get("default", "goes") is null && informer.Store.Get("default", "new") is not null
            && informer.Store.Get("default", "changes")?.Spec.Size == 42), "a relist");
        Assert.Equal(42, informer.Store.Get("default", "changes")!.Spec.Size);
        Assert.Null(informer.Store.Get("default", "goes"));
        Assert.NotNull(informer.Store.Get("default", "new"));
        var afterSync = log.Skip(3).ToArray();
        Assert.Contains("update changes", afterSync);
        Assert.Contains("delete goes", afterSync);
        Assert.Contains("add new", afterSync);
        Assert.DoesNotContain("update stays", afterSync);
    }

    [Fact]
    public async Task Bookmarks_advance_the_resource_version()
    {
        var informer = new Informer<Widget>(_k.Widgets, FastOptions);
        _ = informer.RunAsync(_cts.Token);
        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(30));
        var before = long.Parse(informer.LastResourceVersion, System.Globalization.CultureInfo.InvariantCulture);

        // Changes to another type move the global resourceVersion; only a bookmark tells this informer.
        var secrets = _k.Client.Resource<Secret>(ResourceDefinition.Secrets);
        await secrets.CreateAsync(new Secret { Metadata = new ObjectMetadata { Name = "s", Namespace = "default" } });

        await Eventually.TrueAsync(() => Task.FromResult(long.Parse(informer.LastResourceVersion, System.Globalization.CultureInfo.InvariantCulture) > before), "a bookmark");
    }

    [Fact]
    public async Task Late_handlers_receive_existing_objects_and_custom_indexes_work()
    {
        var owned = Widget.Named("child");
        owned.Metadata.OwnerReferences = [new OwnerReference { Kind = "Parent", Name = "p", Uid = "uid-1", ApiVersion = "x/v1" }];
        await _k.Widgets.CreateAsync(owned);
        var informer = new Informer<Widget>(_k.Widgets, FastOptions);
        informer.Store.AddIndexer("owner", e => e.Metadata.OwnerReferences?.Select(o => o.Uid) ?? []);
        _ = informer.RunAsync(_cts.Token);
        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(30));

        var seen = new List<string>();
        informer.AddEventHandler(onAdd: e => seen.Add(e.Metadata.Name!));

        Assert.Equal(["child"], seen);
        Assert.Equal("child", Assert.Single(informer.Store.ByIndex("owner", "uid-1")).Metadata.Name);
    }

    [Fact]
    public void Backoff_doubles_from_800ms_to_30s_and_resets_after_a_healthy_period()
    {
        var clock = new ManualTimeProvider(DateTimeOffset.UnixEpoch);
        var backoff = ReflectorBackoff.Default(clock);

        var delays = Enumerable.Range(0, 8).Select(_ => { clock.Advance(TimeSpan.FromSeconds(1)); return backoff.NextBase().TotalSeconds; }).ToArray();
        Assert.Equal([0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30], delays);

        clock.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal(0.8, backoff.NextBase().TotalSeconds);
        var jittered = backoff.Next();
        Assert.InRange(jittered.TotalSeconds, 1.6, 3.2);
    }
}
