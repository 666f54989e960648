using System.Text;
using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;

namespace Gateway.Benchmarks.OperatorScale;

/// <summary>
/// The objects of the operator-at-scale run, created as a platform team's GitOps sync would (many parallel
/// creates), and the readiness census the bench polls: Ready=True at the object's current generation.
/// </summary>
public sealed class ScaleObjects(KubernetesClient admin, string ns, int keys, int users, int upstreams)
{
    private const int Parallelism = 16;

    public ResourceClient<JsonObject> ApiKeys { get; } = admin.Resource<JsonObject>(TokenGateResources.ApiKeys);
    public ResourceClient<JsonObject> UserQuotas { get; } = admin.Resource<JsonObject>(TokenGateResources.UserQuotas);
    public ResourceClient<JsonObject> UpstreamAccounts { get; } = admin.Resource<JsonObject>(TokenGateResources.UpstreamAccounts);
    private ResourceClient<JsonObject> Secrets { get; } = admin.Resource<JsonObject>(ResourceDefinition.Secrets);

    public int Total => keys + users + upstreams;

    public static string KeyName(int i) => $"key-{i:D5}";

    public async Task CreateAsync(CancellationToken ct)
    {
        await ForEachAsync(upstreams, async i =>
        {
            await Secrets.CreateAsync(Parse($$"""{ "apiVersion":"v1","kind":"Secret","metadata":{ "name":"ua-{{i}}-credentials"} ,"type":"Opaque","data":{ "apiKey":"{{Convert.ToBase64String(Encoding.UTF8.GetBytes("mock-key-" + i))}}"} } """), ns, ct);
            await UpstreamAccounts.CreateAsync(Parse($$"""
                { "apiVersion":"tokengate.io/v1alpha1","kind":"UpstreamAccount","metadata":{ "name":"ua-{{i}}","labels":{ "pool":"shared"} } ,
                 "spec":{ "provider":"openai-compatible","baseUrl":"http://127.0.0.1:8089/v1",
                   "credentials":{ "apiKeySecretRef":{ "name":"ua-{{i}}-credentials","key":"apiKey"} } ,
                   "models":[{ "name":"gpt-4o-mini"} ,{ "name":"gpt-4o"} ],"priority":{{i % 3}},"weight":1} } 
                """), ns, ct);
        }, ct);
        await ForEachAsync(users, i => UserQuotas.CreateAsync(Parse($$"""
            { "apiVersion":"tokengate.io/v1alpha1","kind":"UserQuota","metadata":{ "name":"user-{{i}}"} ,
             "spec":{ "user":{ "name":"user-{{i}}","email":"user-{{i}}@example.com"} ,
               "budget":{ "amount":50,"period":"monthly","timezone":"UTC"} ,
               "grants":[{ "id":"welcome","amount":10,"reason":"Welcome credit"} ],
               "limits":{ "requestsPerMinute":600,"maxConcurrent":20} } } 
            """), ns, ct), ct);
        await ForEachAsync(keys, i => ApiKeys.CreateAsync(Parse($$"""
            { "apiVersion":"tokengate.io/v1alpha1","kind":"ApiKey","metadata":{ "name":"{{KeyName(i)}}"} ,
             "spec":{ "owner":"user-{{i % users}}","description":"bench key {{i}}"} } 
            """), ns, ct), ct);
    }

    /// <summary>Objects of all three kinds that are Ready at their current generation.</summary>
    public async Task<int> CountReadyAsync(CancellationToken ct) =>
        await CountReadyAsync(ApiKeys, ct) + await CountReadyAsync(UserQuotas, ct) + await CountReadyAsync(UpstreamAccounts, ct);

    private async Task<int> CountReadyAsync(ResourceClient<JsonObject> client, CancellationToken ct)
    {
        var list = await client.ListAllAsync(ns, null, 500, ct);
        return list.Items.Count(IsReady);
    }

    public static bool IsReady(JsonObject o)
    {
        var gen = o["metadata"]?["generation"]?.GetValue<long>();
        if (o["status"]?["observedGeneration"]?.GetValue<long>() != gen) return false;
        return (o["status"]?["conditions"] as JsonArray ?? []).OfType<JsonObject>()
            .Any(c => c["type"]?.GetValue<string>() == "Ready" && c["status"]?.GetValue<string>() == "True");
    }

    /// <summary>status.currentVersion of every ApiKey, by name.</summary>
    public async Task<Dictionary<string, long>> KeyVersionsAsync(CancellationToken ct)
    {
        var list = await ApiKeys.ListAllAsync(ns, null, 500, ct);
        return list.Items.ToDictionary(o => o["metadata"]!["name"]!.GetValue<string>(), o => o["status"]?["currentVersion"]?.GetValue<long>() ?? 0, StringComparer.Ordinal);
    }

    /// <summary>Sets the rotate annotation on the first <paramref name="count"/> keys, all at once (parallel patches).</summary>
    public Task AnnotateRotateAsync(int count, string value, CancellationToken ct) =>
        ForEachAsync(count, i => ApiKeys.PatchAsync(ns, KeyName(i), new JsonObject
        {
            ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { ["tokengate.io/rotate"] = value } },
        }, ct), ct);

    private static JsonObject Parse(string json) => JsonNode.Parse(json)!.AsObject();

    private static Task ForEachAsync(int count, Func<int, Task> action, CancellationToken ct) =>
        Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct },
            async (i, _) => await action(i));
}
