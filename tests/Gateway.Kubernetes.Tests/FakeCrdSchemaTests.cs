using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests;

/// <summary>The fake enforces a CRD's structural schema like the API server, so "invalid specs are rejected" can be tested.</summary>
public sealed class FakeCrdSchemaTests : IAsyncLifetime
{
    private const string Crd = """
        apiVersion: apiextensions.k8s.io/v1
        kind: CustomResourceDefinition
        metadata:
          name: gadgets.test.tokengate.io
        spec:
          group: test.tokengate.io
          scope: Namespaced
          names:
            plural: gadgets
            singular: gadget
            kind: Gadget
            shortNames: [gd]
          versions:
          - name: v1
            served: true
            storage: true
            subresources:
              status: {}
            schema:
              openAPIV3Schema:
                type: object
                required: [spec]
                properties:
                  spec:
                    type: object
                    required: [owner]
                    properties:
                      owner:
                        type: string
                        minLength: 1
                        pattern: '^[a-z0-9-]+$'
                      tier:
                        type: string
                        enum: [free, pro]
                        default: free
                      discountRate:
                        type: number
                        exclusiveMinimum: true
                        minimum: 0
                        maximum: 1
                      replicas:
                        type: integer
                        minimum: 1
                        default: 1
                      expiresAt:
                        type: string
                        format: date-time
                      models:
                        type: array
                        maxItems: 2
                        items:
                          type: string
                      labels:
                        type: object
                        additionalProperties:
                          type: string
                  status:
                    type: object
                    x-kubernetes-preserve-unknown-fields: true
        """;

    private static readonly ResourceDefinition Gadgets = new("test.tokengate.io", "v1", "gadgets", "Gadget");
    private FakeApiServer _server = null!;
    private KubernetesClient _client = null!;
    private ResourceClient<JsonObject> _gadgets = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeApiServer.StartAsync(s => s.RegisterCrds(Crd));
        _client = new KubernetesClient(new KubernetesClientConfiguration { Server = _server.BaseAddress });
        _gadgets = _client.Resource<JsonObject>(Gadgets);
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private static JsonObject Gadget(string name, JsonObject spec) => new()
    {
        ["apiVersion"] = "test.tokengate.io/v1",
        ["kind"] = "Gadget",
        ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = "default" },
        ["spec"] = spec,
    };

    [Fact]
    public async Task Applies_defaults_and_prunes_unknown_fields()
    {
        var created = await _gadgets.CreateAsync(Gadget("ok", new JsonObject { ["owner"] = "demo", ["bogus"] = 1, ["labels"] = new JsonObject { ["a"] = "b" } }));

        Assert.Equal("free", created["spec"]!["tier"]!.GetValue<string>());
        Assert.Equal(1, created["spec"]!["replicas"]!.GetValue<int>());
        Assert.Null(created["spec"]!["bogus"]);
        Assert.Equal("b", created["spec"]!["labels"]!["a"]!.GetValue<string>());
    }

    [Fact]
    public async Task Rejects_invalid_specs_with_a_cause_per_field()
    {
        var spec = new JsonObject
        {
            ["owner"] = "Not Valid",
            ["tier"] = "gold",
            ["discountRate"] = 0,
            ["replicas"] = 1.5,
            ["expiresAt"] = "tomorrow",
            ["models"] = new JsonArray("a", "b", "c"),
        };

        var e = await Assert.ThrowsAsync<KubernetesInvalidException>(() => _gadgets.CreateAsync(Gadget("bad", spec)));

        var fields = e.Causes.Select(c => c.Field ?? "").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["spec.discountRate", "spec.expiresAt", "spec.models", "spec.owner", "spec.replicas", "spec.tier"], fields);
        Assert.Contains("supported values: \"free\", \"pro\"", e.Message, StringComparison.Ordinal);
        Assert.Contains("Gadget.test.tokengate.io \"bad\" is invalid", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Rejects_missing_required_fields_and_invalid_updates()
    {
        var missing = await Assert.ThrowsAsync<KubernetesInvalidException>(() => _gadgets.CreateAsync(Gadget("m", new JsonObject())));
        var cause = Assert.Single(missing.Causes);
        Assert.Equal(("spec.owner", "FieldValueRequired"), (cause.Field, cause.Reason));

        await _gadgets.CreateAsync(Gadget("u", new JsonObject { ["owner"] = "demo" }));
        await Assert.ThrowsAsync<KubernetesInvalidException>(() => _gadgets.PatchAsync("default", "u", new JsonObject { ["spec"] = new JsonObject { ["discountRate"] = 2 } }));
        Assert.Equal(1, (await _gadgets.PatchAsync("default", "u", new JsonObject { ["spec"] = new JsonObject { ["discountRate"] = 0.5 } }))["spec"]!["replicas"]!.GetValue<int>());
    }
}

/// <summary>The generated CRDs in config/crd served by the fake: the samples are accepted, bad specs are not.</summary>
public sealed class GeneratedCrdTests : IAsyncLifetime
{
    private FakeApiServer _server = null!;
    private KubernetesClient _client = null!;
    private IReadOnlyList<FakeResourceType> _types = [];

    public async Task InitializeAsync()
    {
        _server = await FakeApiServer.StartAsync();
        _types = _server.RegisterCrdsFromDirectory(Path.Combine(Gateway.Testing.RepoPaths.Root, "config", "crd"));
        _client = new KubernetesClient(new KubernetesClientConfiguration { Server = _server.BaseAddress });
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _server.DisposeAsync();
    }

    private ResourceClient<JsonObject> For(string kind)
    {
        if (kind == "Secret") return _client.Resource<JsonObject>(ResourceDefinition.Secrets);
        var t = _types.Single(t => t.Kind == kind);
        return _client.Resource<JsonObject>(new ResourceDefinition(t.Group, t.Version, t.Plural, t.Kind));
    }

    [Fact]
    public async Task Samples_are_accepted_and_defaulted()
    {
        Assert.Equal(["ApiKey", "UpstreamAccount", "UserQuota"], _types.Select(t => t.Kind).Order(StringComparer.Ordinal));
        foreach (var file in Directory.GetFiles(Gateway.Testing.RepoPaths.Samples, "*.yaml"))
        {
            foreach (var obj in FakeCrdSchema.ParseYaml(File.ReadAllText(file)))
            {
                await For(obj["kind"]!.GetValue<string>()).CreateAsync(obj);
            }
        }

        var key = await For("ApiKey").GetAsync("default", "demo");
        Assert.False(key["spec"]!["disabled"]!.GetValue<bool>());
        Assert.Equal("24h", key["spec"]!["rotation"]!["gracePeriod"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_invalid_api_key_is_rejected_with_field_causes()
    {
        var bad = FakeCrdSchema.ParseYaml("""
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: {name: bad, namespace: default}
            spec:
              owner: Not A Name
              discountRate: 0
              rotation: {gracePeriod: soon}
            """)[0];

        var e = await Assert.ThrowsAsync<KubernetesInvalidException>(() => For("ApiKey").CreateAsync(bad));

        Assert.Equal(["spec.discountRate", "spec.owner", "spec.rotation.gracePeriod"], e.Causes.Select(c => c.Field ?? "").Order(StringComparer.Ordinal));
    }
}
