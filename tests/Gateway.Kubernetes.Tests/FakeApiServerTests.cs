using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Testing.Kubernetes;

namespace Gateway.Kubernetes.Tests;

/// <summary>The fake's wire format, checked over raw HTTP so client bugs cannot hide fake bugs.</summary>
public sealed class FakeApiServerTests : IAsyncLifetime
{
    private FakeApiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeApiServer.StartAsync();
        _http = new HttpClient { BaseAddress = _server.BaseAddress };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private async Task<(HttpStatusCode Code, JsonObject Body)> Send(HttpMethod method, string path, string? json = null, string contentType = "application/json")
    {
        using var req = new HttpRequestMessage(method, path);
        if (json is not null) req.Content = new StringContent(json, Encoding.UTF8, contentType);
        using var resp = await _http.SendAsync(req);
        return (resp.StatusCode, (JsonObject)JsonNode.Parse(await resp.Content.ReadAsStringAsync())!);
    }

    [Fact]
    public async Task Not_found_is_a_kubernetes_status_object()
    {
        var (code, body) = await Send(HttpMethod.Get, "apis/tokengate.io/v1alpha1/namespaces/default/apikeys/missing");

        Assert.Equal(HttpStatusCode.NotFound, code);
        Assert.Equal("Status", body["kind"]!.GetValue<string>());
        Assert.Equal("v1", body["apiVersion"]!.GetValue<string>());
        Assert.Equal("Failure", body["status"]!.GetValue<string>());
        Assert.Equal("NotFound", body["reason"]!.GetValue<string>());
        Assert.Equal(404, body["code"]!.GetValue<int>());
        Assert.Equal("missing", body["details"]!["name"]!.GetValue<string>());
        Assert.Equal("apikeys", body["details"]!["kind"]!.GetValue<string>());
        Assert.Equal("tokengate.io", body["details"]!["group"]!.GetValue<string>());
    }

    [Fact]
    public async Task Resource_versions_are_global_and_increase_across_types()
    {
        var (_, s) = await Send(HttpMethod.Post, "api/v1/namespaces/default/secrets", """{"metadata":{"name":"a"}}""");
        var (_, k) = await Send(HttpMethod.Post, "apis/tokengate.io/v1alpha1/namespaces/default/apikeys", """{"metadata":{"name":"a"},"spec":{"owner":"x"}}""");
        var (_, list) = await Send(HttpMethod.Get, "apis/tokengate.io/v1alpha1/apikeys");

        var rvS = long.Parse(s["metadata"]!["resourceVersion"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var rvK = long.Parse(k["metadata"]!["resourceVersion"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(rvK > rvS);
        Assert.Equal("ApiKeyList", list["kind"]!.GetValue<string>());
        Assert.Equal(rvK.ToString(System.Globalization.CultureInfo.InvariantCulture), list["metadata"]!["resourceVersion"]!.GetValue<string>());
        Assert.Equal("ApiKey", k["kind"]!.GetValue<string>());
    }

    [Fact]
    public async Task Patch_needs_the_merge_patch_content_type()
    {
        await Send(HttpMethod.Post, "api/v1/namespaces/default/configmaps", """{"metadata":{"name":"c"},"data":{"a":"1"}}""");

        var (bad, _) = await Send(HttpMethod.Patch, "api/v1/namespaces/default/configmaps/c", """{"data":{"b":"2"}}""");
        var (ok, body) = await Send(HttpMethod.Patch, "api/v1/namespaces/default/configmaps/c", """{"data":{"b":"2"}}""", "application/merge-patch+json");

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, bad);
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal("1", body["data"]!["a"]!.GetValue<string>());
        Assert.Equal("2", body["data"]!["b"]!.GetValue<string>());
    }

    [Fact]
    public async Task Legacy_watch_path_replays_events_after_a_resource_version()
    {
        var (_, first) = await Send(HttpMethod.Post, "api/v1/namespaces/default/secrets", """{"metadata":{"name":"one"}}""");
        var after = first["metadata"]!["resourceVersion"]!.GetValue<string>();
        await Send(HttpMethod.Post, "api/v1/namespaces/default/secrets", """{"metadata":{"name":"two","labels":{"app":"x"}}}""");
        await Send(HttpMethod.Post, "api/v1/namespaces/default/secrets", """{"metadata":{"name":"three"}}""");

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var resp = await _http.GetAsync($"api/v1/watch/namespaces/default/secrets?resourceVersion={after}&labelSelector=app%3Dx&timeoutSeconds=1", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
        var line = await reader.ReadLineAsync(cts.Token);

        var ev = JsonNode.Parse(line!)!;
        Assert.Equal("ADDED", ev["type"]!.GetValue<string>());
        Assert.Equal("two", ev["object"]!["metadata"]!["name"]!.GetValue<string>());
        Assert.Null(await reader.ReadLineAsync(cts.Token));
    }

    [Fact]
    public void Label_selectors_support_equality_sets_and_existence()
    {
        var labels = new Dictionary<string, string> { ["env"] = "prod", ["tier"] = "gold" };

        Assert.True(FakeLabelSelector.Parse("env=prod,tier in (gold, silver)").Matches(labels));
        Assert.True(FakeLabelSelector.Parse("env==prod, !missing, tier").Matches(labels));
        Assert.False(FakeLabelSelector.Parse("env!=prod").Matches(labels));
        Assert.False(FakeLabelSelector.Parse("tier notin (gold)").Matches(labels));
        Assert.True(FakeLabelSelector.Parse("other notin (gold)").Matches(labels));
        Assert.True(FakeLabelSelector.Parse("").Matches(labels));
    }
}
