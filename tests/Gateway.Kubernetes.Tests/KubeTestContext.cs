using System.Text.Json;
using System.Text.Json.Serialization;
using Gateway.Kubernetes.Client;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests;

/// <summary>A custom resource used only by these tests, so the runtime is shown to be generic.</summary>
public sealed class Widget
{
    public string ApiVersion { get; set; } = "test.tokengate.io/v1";
    public string Kind { get; set; } = "Widget";
    public ObjectMetadata Metadata { get; set; } = new();
    public WidgetSpec Spec { get; set; } = new();
    public WidgetStatus? Status { get; set; }

    public static Widget Named(string name, string color = "red", int size = 1, string ns = "default") =>
        new() { Metadata = new ObjectMetadata { Name = name, Namespace = ns }, Spec = new WidgetSpec { Color = color, Size = size } };
}

public sealed class WidgetSpec
{
    public string Color { get; set; } = "";
    public int Size { get; set; }
}

public sealed class WidgetStatus
{
    public string? Phase { get; set; }
    public long? ObservedGeneration { get; set; }
    public List<WidgetCondition>? Conditions { get; set; }
}

/// <summary>Shaped like metav1.Condition but a different type, as resource libraries have their own.</summary>
public sealed class WidgetCondition
{
    public string Type { get; set; } = "";
    public string Status { get; set; } = "Unknown";
    public long? ObservedGeneration { get; set; }
    public DateTimeOffset LastTransitionTime { get; set; }
    public string Reason { get; set; } = "";
    public string Message { get; set; } = "";
}

/// <summary>A fake API server plus a client connected to it over loopback HTTP.</summary>
public sealed class KubeTestContext : IAsyncDisposable
{
    public static readonly FakeResourceType WidgetType = new("test.tokengate.io", "v1", "widgets", "Widget", HasStatus: true) { AllowUnconditionalUpdate = false };
    public static readonly ResourceDefinition WidgetDefinition = new("test.tokengate.io", "v1", "widgets", "Widget");
    public static readonly JsonSerializerOptions Json = CreateJson();

    private KubeTestContext(FakeApiServer server)
    {
        Server = server;
        Client = new KubernetesClient(new KubernetesClientConfiguration { Server = server.BaseAddress, RequestTimeout = TimeSpan.FromSeconds(10) });
        Widgets = Client.Resource<Widget>(WidgetDefinition, Json);
    }

    public FakeApiServer Server { get; }
    public KubernetesClient Client { get; }
    public ResourceClient<Widget> Widgets { get; }

    public static async Task<KubeTestContext> StartAsync(Action<FakeApiServer>? configure = null)
    {
        var server = await FakeApiServer.StartAsync(s =>
        {
            s.Register(WidgetType);
            s.BookmarkInterval = TimeSpan.FromMilliseconds(100);
            configure?.Invoke(s);
        });
        return new KubeTestContext(server);
    }

    /// <summary>A second, independent client to the same server (another operator replica).</summary>
    public KubernetesClient NewClient() =>
        new(new KubernetesClientConfiguration { Server = Server.BaseAddress, RequestTimeout = TimeSpan.FromSeconds(10) });

    private static JsonSerializerOptions CreateJson()
    {
        var o = new JsonSerializerOptions(JsonSerializerDefaults.Web) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };
        o.MakeReadOnly(populateMissingResolver: true);
        return o;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Server.DisposeAsync();
    }
}
