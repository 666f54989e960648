using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;

namespace Gateway.Kubernetes.Tests.Runtime;

public sealed class OwnershipTests : IAsyncLifetime
{
    private KubeTestContext _k = null!;

    public async Task InitializeAsync() => _k = await KubeTestContext.StartAsync();

    public async Task DisposeAsync() => await _k.DisposeAsync();

    [Fact]
    public async Task Create_or_update_creates_then_updates_only_on_change_with_a_controller_reference()
    {
        var owner = await _k.Widgets.CreateAsync(Widget.Named("owner"));
        var secrets = _k.Client.Resource<Secret>(ResourceDefinition.Secrets);
        var reference = Ownership.ControllerReference(KubeTestContext.WidgetDefinition, owner.Metadata);
        Secret Create() => new() { Metadata = new ObjectMetadata { Name = "owner-key", Namespace = "default", OwnerReferences = [reference] }, StringData = new() { ["K"] = "v1" } };

        var (created, r1) = await Ownership.CreateOrUpdateAsync(secrets, "default", "owner-key", Create, _ => true);
        Assert.Equal(UpsertResult.Created, r1);
        Assert.Equal("v1"u8.ToArray(), created.Data!["K"]);
        Assert.Null(created.StringData);
        var owned = Assert.Single(created.Metadata.OwnerReferences!);
        Assert.Equal(("test.tokengate.io/v1", "Widget", "owner", owner.Metadata.Uid, true, true), (owned.ApiVersion, owned.Kind, owned.Name, owned.Uid, owned.Controller, owned.BlockOwnerDeletion));

        var (_, r2) = await Ownership.CreateOrUpdateAsync(secrets, "default", "owner-key", Create, s => Ownership.SetOwnerReference(s.Metadata, reference));
        Assert.Equal(UpsertResult.Unchanged, r2);
        var rvBefore = (await secrets.GetAsync("default", "owner-key")).Metadata.ResourceVersion;

        var (updated, r3) = await Ownership.CreateOrUpdateAsync(secrets, "default", "owner-key", Create, s =>
        {
            s.Data = new() { ["K"] = "v2"u8.ToArray() };
            return true;
        });
        Assert.Equal(UpsertResult.Updated, r3);
        Assert.NotEqual(rvBefore, updated.Metadata.ResourceVersion);
        Assert.Equal("v2"u8.ToArray(), updated.Data!["K"]);
    }

    [Fact]
    public void A_second_controller_owner_is_refused()
    {
        var meta = new ObjectMetadata { Name = "s", Namespace = "default" };
        Assert.True(Ownership.SetOwnerReference(meta, new OwnerReference { ApiVersion = "a/v1", Kind = "A", Name = "a", Uid = "1", Controller = true }));
        Assert.False(Ownership.SetOwnerReference(meta, new OwnerReference { ApiVersion = "a/v1", Kind = "A", Name = "a", Uid = "1", Controller = true }));

        Assert.Throws<InvalidOperationException>(() => Ownership.SetOwnerReference(meta, new OwnerReference { ApiVersion = "b/v1", Kind = "B", Name = "b", Uid = "2", Controller = true }));
    }
}
