using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Testing;

namespace Gateway.Kubernetes.Tests.Runtime;

/// <summary>A reconciler whose behaviour each test sets.</summary>
public sealed class ScriptedReconciler<T> : IReconciler<T> where T : class
{
    public ConcurrentQueue<string> Calls { get; } = new();
    public Func<string?, string, CancellationToken, Task<ReconcileResult>> Behaviour { get; set; } = (_, _, _) => Task.FromResult(ReconcileResult.Done);

    public int CountFor(string name) => Calls.Count(c => c == name);

    public async Task<ReconcileResult> ReconcileAsync(string? ns, string name, CancellationToken cancellationToken)
    {
        Calls.Enqueue(name);
        return await Behaviour(ns, name, cancellationToken);
    }
}

public sealed class ControllerTests : IAsyncLifetime
{
    private static readonly InformerOptions Fast = new() { InitialBackoff = TimeSpan.FromMilliseconds(20), MaxBackoff = TimeSpan.FromMilliseconds(100), BackoffJitter = 0 };
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _running = [];
    private KubeTestContext _k = null!;

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync()
    {
        await _cts.CancelAsync();
        await Task.WhenAll(_running).WaitAsync(TimeSpan.FromSeconds(30));
        await _k.DisposeAsync();
        _cts.Dispose();
    }

    private (Informer<Widget> Informer, Controller<Widget> Controller) Start(ScriptedReconciler<Widget> reconciler, ControllerOptions<Widget>? options = null, Action<Controller<Widget>>? wire = null)
    {
        var informer = new Informer<Widget>(_k.Widgets, Fast);
        var controller = new Controller<Widget>(informer, reconciler, options ?? new ControllerOptions<Widget> { Name = "Widget" });
        wire?.Invoke(controller);
        _running.Add(informer.RunAsync(_cts.Token));
        _running.Add(controller.RunAsync(_cts.Token));
        return (informer, controller);
    }

    [Fact]
    public async Task Reconciles_existing_and_new_objects_and_requeues_after_a_delay()
    {
        await _k.Widgets.CreateAsync(Widget.Named("existing"));
        var reconciler = new ScriptedReconciler<Widget>();
        reconciler.Behaviour = (_, name, _) => Task.FromResult(name == "ticker" ? ReconcileResult.After(TimeSpan.FromMilliseconds(30)) : ReconcileResult.Done);
        Start(reconciler);

        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("existing") >= 1), "the existing object");
        await _k.Widgets.CreateAsync(Widget.Named("ticker"));

        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("ticker") >= 4), "periodic requeues");
        Assert.Equal(1, reconciler.CountFor("existing"));
    }

    [Fact]
    public async Task Failing_reconciles_are_retried_with_growing_backoff_then_forgotten()
    {
        var failuresLeft = 3;
        var reconciler = new ScriptedReconciler<Widget>();
        reconciler.Behaviour = (_, _, _) => Interlocked.Decrement(ref failuresLeft) >= 0 ? throw new InvalidOperationException("boom") : Task.FromResult(ReconcileResult.Done);
        var (_, controller) = Start(reconciler, new ControllerOptions<Widget>
        {
            Name = "Widget",
            RateLimiterFactory = () => new ItemExponentialFailureRateLimiter<string>(TimeSpan.FromMilliseconds(10), TimeSpan.FromSeconds(1)),
        });

        await _k.Widgets.CreateAsync(Widget.Named("flaky"));

        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("flaky") == 4), "three retries and a success");
        await Eventually.TrueAsync(() => Task.FromResult(controller.Queue?.NumRequeues("default/flaky") == 0), "the backoff to be forgotten");
    }

    [Fact]
    public async Task Generation_filter_ignores_status_writes_but_not_spec_changes_or_deletion()
    {
        var reconciler = new ScriptedReconciler<Widget>();
        Start(reconciler, new ControllerOptions<Widget> { Name = "Widget", Filters = [new GenerationChangedFilter<Widget>()] });
        var w = await _k.Widgets.CreateAsync(Widget.Named("g"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("g") == 1), "the first reconcile");

        w.Status = new WidgetStatus { Phase = "Ready", ObservedGeneration = 1 };
        w = await _k.Widgets.UpdateStatusAsync(w);
        w.Metadata.Labels = new() { ["x"] = "y" };
        w = await _k.Widgets.UpdateAsync(w);
        // Events arrive in order and one worker takes keys FIFO: once the marker is reconciled, any reconcile
        // the status and label writes had caused would have happened.
        await _k.Widgets.CreateAsync(Widget.Named("marker"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("marker") == 1), "the marker");
        Assert.Equal(1, reconciler.CountFor("g"));

        w.Spec.Size = 3;
        await _k.Widgets.UpdateAsync(w);
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("g") == 2), "the spec change");

        await _k.Widgets.DeleteAsync("default", "g");
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("g") == 3), "the delete");
    }

    [Fact]
    public async Task An_object_applied_to_the_cache_while_the_controller_starts_is_reconciled_once()
    {
        // Ordering-dependent by design: a handler registered before the controller's holds the informer inside
        // the dispatch of "late" (already in the cache, not yet seen by the controller's handler) while the
        // controller starts. The controller must not both list "late" and then enqueue it again from the event.
        using var inDispatch = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var informer = new Informer<Widget>(_k.Widgets, Fast);
        informer.AddEventHandler(onAdd: e =>
        {
            if (e.Metadata.Name != "late") return;
            inDispatch.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        });
        var reconciler = new ScriptedReconciler<Widget>();
        var controller = new Controller<Widget>(informer, reconciler, new ControllerOptions<Widget> { Name = "Widget" });
        _running.Add(informer.RunAsync(_cts.Token));
        await informer.WaitForSyncAsync(_cts.Token);

        await _k.Widgets.CreateAsync(Widget.Named("late"));
        Assert.True(inDispatch.Wait(TimeSpan.FromSeconds(30)), "the informer never dispatched the add of 'late'");
        // On another thread: with the fix, starting blocks until the dispatch below is released.
        _running.Add(Task.Run(() => controller.RunAsync(_cts.Token)));
        // Without the fix the controller lists "late" and reconciles it while the event is still being dispatched.
        // With it, the controller waits for the dispatch to end, so this wait runs out (which is fine).
        try
        {
            await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("late") >= 1), "an early reconcile", TimeSpan.FromSeconds(2));
        }
        catch (TimeoutException)
        {
        }
        release.Set();

        await _k.Widgets.CreateAsync(Widget.Named("marker"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("marker") == 1 && reconciler.CountFor("late") >= 1), "the marker and 'late'");
        Assert.Equal(1, reconciler.CountFor("late"));
    }

    [Fact]
    public async Task A_controller_that_reads_another_cache_starts_only_once_that_cache_has_listed()
    {
        // Ordering: the other informer is started only when the first reconcile happened or two seconds after the
        // primary cache listed, whichever comes first. With Reads, the reconcile must wait for it and see it listed;
        // without, it runs against the unlisted cache at once.
        await _k.Widgets.CreateAsync(Widget.Named("reader"));
        var others = new Informer<Secret>(_k.Client.Resource<Secret>(ResourceDefinition.Secrets), Fast);
        var sawOtherSynced = new ConcurrentQueue<bool>();
        var firstCall = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var reconciler = new ScriptedReconciler<Widget>();
        reconciler.Behaviour = (_, _, _) =>
        {
            sawOtherSynced.Enqueue(others.HasSynced);
            firstCall.TrySetResult();
            return Task.FromResult(ReconcileResult.Done);
        };
        var (informer, _) = Start(reconciler, wire: c => c.Reads(others));
        await informer.WaitForSyncAsync(_cts.Token).WaitAsync(TimeSpan.FromSeconds(60));

        await Task.WhenAny(firstCall.Task, Task.Delay(TimeSpan.FromSeconds(2)));
        _running.Add(others.RunAsync(_cts.Token));

        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("reader") == 1), "the reconcile of 'reader'");
        Assert.All(sawOtherSynced, Assert.True);
    }

    [Fact]
    public async Task Changes_to_owned_secrets_enqueue_the_owner()
    {
        var secretsInformer = new Informer<Secret>(_k.Client.Resource<Secret>(ResourceDefinition.Secrets), Fast);
        _running.Add(secretsInformer.RunAsync(_cts.Token));
        var reconciler = new ScriptedReconciler<Widget>();
        Start(reconciler, wire: c => c.Owns(secretsInformer));
        var owner = await _k.Widgets.CreateAsync(Widget.Named("owner"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 1), "the first reconcile");

        var secrets = _k.Client.Resource<Secret>(ResourceDefinition.Secrets);
        await secrets.CreateAsync(new Secret
        {
            Metadata = new ObjectMetadata
            {
                Name = "owner-key",
                Namespace = "default",
                OwnerReferences = [new OwnerReference { ApiVersion = "test.tokengate.io/v1", Kind = "Widget", Name = "owner", Uid = owner.Metadata.Uid!, Controller = true }],
            },
        });
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 2), "the owner reconcile after the secret appeared");

        await secrets.DeleteAsync("default", "owner-key");
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 3), "the owner reconcile after the secret was deleted");

        // A secret that is not controller-owned by a Widget does not enqueue anything.
        await secrets.CreateAsync(new Secret { Metadata = new ObjectMetadata { Name = "unrelated", Namespace = "default" } });
        await Eventually.TrueAsync(() => Task.FromResult(secretsInformer.Store.Get("default", "unrelated") is not null), "the unrelated secret cached");
        Assert.Equal(3, reconciler.CountFor("owner"));
    }

    [Fact]
    public async Task Owned_objects_the_owner_creates_itself_do_not_enqueue_it_again_but_their_edits_and_deletions_do()
    {
        var secretsInformer = new Informer<Secret>(_k.Client.Resource<Secret>(ResourceDefinition.Secrets), Fast);
        _running.Add(secretsInformer.RunAsync(_cts.Token));
        var reconciler = new ScriptedReconciler<Widget>();
        Start(reconciler, wire: c => c.Owns(secretsInformer, includeAdds: false));
        var owner = await _k.Widgets.CreateAsync(Widget.Named("owner"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 1), "the first reconcile");

        var secrets = _k.Client.Resource<Secret>(ResourceDefinition.Secrets);
        var created = await secrets.CreateAsync(new Secret
        {
            Metadata = new ObjectMetadata
            {
                Name = "owner-key",
                Namespace = "default",
                OwnerReferences = [new OwnerReference { ApiVersion = "test.tokengate.io/v1", Kind = "Widget", Name = "owner", Uid = owner.Metadata.Uid!, Controller = true }],
            },
        });
        await Eventually.TrueAsync(() => Task.FromResult(secretsInformer.Store.Get("default", "owner-key") is not null), "the secret cached");
        // The creation went through the informer's handlers without queueing the owner: the marker below is
        // reconciled after that event was dispatched, and the owner still has its single reconcile.
        await _k.Widgets.CreateAsync(Widget.Named("marker"));
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("marker") == 1), "the marker");
        Assert.Equal(1, reconciler.CountFor("owner"));

        created.Data = new Dictionary<string, byte[]> { ["k"] = [1] };
        await secrets.UpdateAsync(created);
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 2), "the owner reconcile after the secret was edited");

        await secrets.DeleteAsync("default", "owner-key");
        await Eventually.TrueAsync(() => Task.FromResult(reconciler.CountFor("owner") == 3), "the owner reconcile after the secret was deleted");
    }

    [Fact]
    public async Task Adding_a_finalizer_from_a_cached_copy_patches_once_and_falls_back_to_a_read_when_the_copy_is_stale()
    {
        const string finalizer = "test.tokengate.io/cleanup";
        var fresh = await _k.Widgets.GetEntryAsync("default", (await _k.Widgets.CreateAsync(Widget.Named("cached"))).Metadata.Name!);
        var withFinalizer = _k.Widgets.MetadataOf(await Finalizers.AddAsync(_k.Widgets, fresh.Metadata, finalizer));
        Assert.Contains(finalizer, withFinalizer.Finalizers!);

        // The same (now stale) copy again, after someone else changed the object: the resourceVersion
        // precondition fails, the fresh read keeps the other finalizer, nothing is lost.
        var stale = await _k.Widgets.GetEntryAsync("default", (await _k.Widgets.CreateAsync(Widget.Named("stale"))).Metadata.Name!);
        await Finalizers.AddAsync(_k.Widgets, "default", "stale", "test.tokengate.io/other");
        var after = _k.Widgets.MetadataOf(await Finalizers.AddAsync(_k.Widgets, stale.Metadata, finalizer));
        Assert.Equal(["test.tokengate.io/other", finalizer], after.Finalizers!);
    }

    [Fact]
    public async Task Finalizer_flow_adds_on_reconcile_and_cleans_up_on_delete()
    {
        const string finalizer = "test.tokengate.io/cleanup";
        var cleanedUp = new ConcurrentBag<string>();
        var reconciler = new ScriptedReconciler<Widget>();
        Informer<Widget>? informer = null;
        reconciler.Behaviour = async (ns, name, ct) =>
        {
            var entry = informer!.Store.GetEntry(ObjectKey.Of(ns, name));
            if (entry is null) return ReconcileResult.Done;
            if (entry.Metadata.DeletionTimestamp is not null)
            {
                cleanedUp.Add(name);
                await Finalizers.RemoveAsync(_k.Widgets, ns, name, finalizer, ct);
                return ReconcileResult.Done;
            }
            await Finalizers.AddAsync(_k.Widgets, ns, name, finalizer, ct);
            return ReconcileResult.Done;
        };
        (informer, _) = Start(reconciler, new ControllerOptions<Widget> { Name = "Widget", Filters = [new GenerationChangedFilter<Widget> { IncludeFinalizerChanges = true }] });

        await _k.Widgets.CreateAsync(Widget.Named("fin"));
        await Eventually.TrueAsync(async () => (await _k.Widgets.GetEntryAsync("default", "fin")).Metadata.Finalizers?.Contains(finalizer) == true, "the finalizer");

        var marked = await _k.Widgets.DeleteAsync("default", "fin");
        Assert.NotNull(marked!.Metadata.DeletionTimestamp);

        await Eventually.TrueAsync(async () => await _k.Widgets.TryGetAsync("default", "fin") is null, "the object to be deleted");
        Assert.Contains("fin", cleanedUp);
    }

    [Fact]
    public async Task Conflict_retry_rereads_and_applies_the_change()
    {
        await _k.Widgets.CreateAsync(Widget.Named("cr"));
        var attempts = 0;

        var result = await ConflictRetry.RunAsync(async ct =>
        {
            attempts++;
            var w = await _k.Widgets.GetAsync("default", "cr", ct);
            if (attempts == 1)
            {
                // Someone else writes between our read and our update.
                var other = await _k.Widgets.GetAsync("default", "cr", ct);
                other.Spec.Color = "green";
                await _k.Widgets.UpdateAsync(other, ct);
            }
            w.Spec.Size = 10;
            return await _k.Widgets.UpdateAsync(w, ct);
        });

        Assert.Equal(2, attempts);
        Assert.Equal(10, result.Spec.Size);
        Assert.Equal("green", result.Spec.Color);
    }

    [Fact]
    public async Task Reconcile_metrics_are_recorded_with_kind_and_result()
    {
        var measurements = new ConcurrentQueue<(string Name, long Value, string? Kind, string? Result)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == OperatorMetrics.MeterName) l.EnableMeasurementEvents(inst); };
        void Record<TValue>(Instrument inst, TValue value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? kind = null, result = null;
            foreach (var t in tags)
            {
                if (t.Key == "kind") kind = t.Value as string;
                if (t.Key == "result") result = t.Value as string;
            }
            measurements.Enqueue((inst.Name, Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture), kind, result));
        }
        listener.SetMeasurementEventCallback<long>((inst, value, tags, _) => Record(inst, value, tags));
        listener.SetMeasurementEventCallback<int>((inst, value, tags, _) => Record(inst, value, tags));
        listener.SetMeasurementEventCallback<double>((inst, value, tags, _) => Record(inst, value, tags));
        listener.Start();

        var reconciler = new ScriptedReconciler<Widget>();
        Start(reconciler, new ControllerOptions<Widget> { Name = "widget-metrics" });
        await _k.Widgets.CreateAsync(Widget.Named("m"));

        await Eventually.TrueAsync(() => Task.FromResult(measurements.Any(m => m.Name == "tokengate_operator_reconcile_total" && m.Kind == "widget-metrics" && m.Result == "success")), "a reconcile_total measurement");
        Assert.Contains(measurements, m => m.Name == "tokengate_operator_reconcile_duration_seconds" && m.Kind == "widget-metrics");
        listener.RecordObservableInstruments();
        Assert.Contains(measurements, m => m.Name == "tokengate_operator_queue_depth" && m.Kind == "widget-metrics");
    }
}
