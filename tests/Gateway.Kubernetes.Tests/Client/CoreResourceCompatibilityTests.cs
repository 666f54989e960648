using Gateway.Core.Json;
using Gateway.Core.Resources;
using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Informers;
using Gateway.Kubernetes.Runtime;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using CoreCondition = Gateway.Core.Resources.Condition;

namespace Gateway.Kubernetes.Tests.Client;

/// <summary>
/// The runtime is generic; this shows it carries the resource types the operator defines (with their own
/// metadata and condition classes and TokenGate's JSON options) through the paths the operator uses.
/// </summary>
public sealed class CoreResourceCompatibilityTests : IAsyncLifetime
{
    private static readonly ResourceDefinition ApiKeys = new(TokenGateApi.Group, TokenGateApi.Version, "apikeys", "ApiKey");
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
    public async Task ApiKey_round_trips_with_status_conditions_and_is_cached_by_an_informer()
    {
        var client = _k.Client.Resource<ApiKey>(ApiKeys, TokenGateJson.Options);
        var informer = new Informer<ApiKey>(client);
        _ = informer.RunAsync(_cts.Token);

        var key = new ApiKey { Metadata = new ObjectMeta { Name = "demo", Namespace = "default" }, Spec = new ApiKeySpec { Owner = "demo", AllowedModels = ["gpt-*"] } };
        key = await client.CreateAsync(key);
        Assert.Equal(1, key.Metadata.Generation);
        Assert.Null(key.Status);

        key.Status = new ApiKeyStatus { ObservedGeneration = key.Metadata.Generation, KeyPrefix = "tg-abc" };
        var now = DateTimeOffset.UtcNow;
        Assert.True(Conditions.Set(key.Status.Conditions, "Ready", Conditions.True, "Issued", "key issued", key.Metadata.Generation, now));
        key = await client.UpdateStatusAsync(key);

        var raw = _k.Server.GetObject(FakeApiServer.ApiKeys, "default", "demo")!;
        Assert.Equal("tg-abc", raw["status"]!["keyPrefix"]!.GetValue<string>());
        Assert.Equal("Ready", raw["status"]!["conditions"]![0]!["type"]!.GetValue<string>());
        var ready = Conditions.Find<CoreCondition>(key.Status!.Conditions, "Ready")!;
        Assert.Equal(1, ready.ObservedGeneration);

        await Eventually.TrueAsync(() => Task.FromResult(informer.Store.Get("default", "demo")?.Status?.KeyPrefix == "tg-abc"), "the informer to see the status");
        var entry = informer.Store.GetEntry("default/demo")!;
        Assert.Equal(key.Metadata.ResourceVersion, entry.Metadata.ResourceVersion);

        await Finalizers.AddAsync(client, "default", "demo", TokenGateApi.Finalizer);
        await client.DeleteAsync("default", "demo");
        Assert.NotNull((await client.GetAsync("default", "demo")).Metadata.DeletionTimestamp);
        Assert.Null(await Finalizers.RemoveAsync(client, "default", "demo", TokenGateApi.Finalizer));
        Assert.Null(await client.TryGetAsync("default", "demo"));
    }
}
