using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// The same scripted calls against the fake and a real kube-apiserver (KUBEBUILDER_ASSETS), compared line by
/// line: where they disagree the fake is wrong. Covers what the operator relies on: defaulting and schema
/// errors of the TokenGate CRDs, generation and finalizer semantics, error Statuses, Secrets, Leases, Events,
/// list paging and watch. Each difference found so far is fixed in the fake (see the README's list).
/// </summary>
[RealApiServer, Collection(RealApiServerCollection.Name)]
public sealed class FakeMatchesRealApiServerTests(RealApiServerFixture fixture) : IAsyncLifetime
{
    private IKubeTestCluster _real = null!;
    private IKubeTestCluster _fake = null!;

    public async Task InitializeAsync()
    {
        _real = await fixture.AcquireAsync();
        _fake = await KubernetesHarness.FakeClusterAsync();
    }

    public async Task DisposeAsync()
    {
        await _fake.DisposeAsync();
        await _real.DisposeAsync();
    }

    private async Task CompareAsync(Func<ApiServerTranscript, Task> script)
    {
        var fake = new ApiServerTranscript(_fake);
        var real = new ApiServerTranscript(_real);
        await script(fake);
        await script(real);
        ApiServerTranscript.AssertSame(fake, real);
    }

    private static ResourceClient<JsonObject> Keys(ApiServerTranscript t) => t.For(TokenGateResources.ApiKeys);

    [KubeFact]
    public Task The_samples_are_stored_with_the_same_defaults() => CompareAsync(async t =>
    {
        foreach (var file in Directory.GetFiles(Gateway.Testing.RepoPaths.Samples, "*.yaml").Order(StringComparer.Ordinal))
        {
            foreach (var doc in FakeCrdSchema.ParseYaml(await File.ReadAllTextAsync(file)))
            {
                var kind = doc["kind"]!.GetValue<string>();
                var type = kind == "Secret" ? ResourceDefinition.Secrets : TokenGateResources.ForKind(kind);
                await t.Step($"create {kind}", () => t.For(type).CreateAsync(doc)!);
            }
        }
    });

    public static TheoryData<string, string> InvalidSpecs => new()
    {
        { "ApiKey", "owner: Not A Name\ndiscountRate: 0\nrotation: {gracePeriod: soon}" },
        { "ApiKey", "description: no owner" },
        { "ApiKey", "owner: demo\nownr: typo" },
        { "ApiKey", "owner: demo\nlimits: {tokenLimit: 0}" },
        { "ApiKey", "owner: demo\nexpiresAt: tomorrow" },
        { "UpstreamAccount", "provider: bedrock\nbaseUrl: ftp://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: []" },
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: a}, {name: a}]\nweight: 0" },
        { "UpstreamAccount", "provider: openai\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: a}]" },
        { "UserQuota", "user: {name: a, email: not-an-email}\ndiscountRate: 1.5\nbudget: {amount: 5, period: yearly}" },
        { "UserQuota", "user: {name: a, email: a@b.c}\ngrants: [{id: g1}]\nlimits: {requestsPerMinute: 0}" },
        { "UserQuota", "user: {name: a}\nmaxKeys: \"many\"" },
        // CEL rules (x-kubernetes-validations).
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}, oauth: {secretRef: {name: o}, tokenUrl: \"https://t\", clientId: c}}\nmodels: [{name: a}]" },
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {}\nmodels: [{name: a}]" },
        { "UpstreamAccount", "provider: azure-openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: gpt-4o, upstreamName: d1}, {name: gpt-4o-mini}]" },
        { "UpstreamAccount", "provider: azure-openai\nbaseUrl: https://x\ncredentials: {}\nmodels: [{name: gpt-4o}]\nweight: 0" },
        // Usage windows: an unknown period and a zero limit; a window without limits (CEL); a period twice (list map).
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: a}]\nwindows: [{period: 2h, requests: 0}]" },
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: a}]\nwindows: [{period: 5h}]" },
        { "UpstreamAccount", "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: a}]\nwindows: [{period: 5h, requests: 1}, {period: 5h, tokens: 1}]" },
    };

    [Theory]
    [RealApiServerMemberData(nameof(InvalidSpecs))]
    public async Task Invalid_specs_are_rejected_with_the_same_status_and_causes(string kind, string spec)
    {
        await CompareAsync(async t =>
        {
            var doc = ApiServerTranscript.Parse($"apiVersion: tokengate.io/v1alpha1\nkind: {kind}\nmetadata: {{name: bad, namespace: default}}\nspec:\n"
                + string.Join("\n", spec.Split('\n').Select(l => "  " + l)));
            await t.Step("create", () => t.For(TokenGateResources.ForKind(kind)).CreateAsync(doc)!);
        });
    }

    [KubeFact]
    public Task Generation_status_and_finalizers_behave_the_same() => CompareAsync(async t =>
    {
        var keys = Keys(t);
        JsonObject ApiKey() => ApiServerTranscript.Parse("""
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: life, namespace: default, labels: { a: "1" } }
            spec: { owner: demo, description: first }
            """);
        var created = await t.Step("create", () => keys.CreateAsync(ApiKey())!);
        await t.Step("create again", () => keys.CreateAsync(ApiKey())!);
        await t.Step("get missing", () => keys.GetAsync("default", "nobody")!);
        await t.Step("label patch", () => keys.PatchAsync("default", "life", Node("""{"metadata":{"labels":{"b":"2"}}}"""))!, Meta);
        await t.Step("annotation patch", () => keys.PatchAsync("default", "life", Node("""{"metadata":{"annotations":{"tokengate.io/rotate":"now"}}}"""))!, Meta);
        await t.Step("spec patch", () => keys.PatchAsync("default", "life", Node("""{"spec":{"description":"second"}}"""))!, Meta);
        await t.Step("null removes a field", () => keys.PatchAsync("default", "life", Node("""{"spec":{"description":null}}"""))!, o => o["spec"]);

        var current = await keys.GetAsync("default", "life");
        current["spec"]!["description"] = "through status";
        current["status"] = new JsonObject { ["keyPrefix"] = "tg-abcdef", ["currentVersion"] = 1 };
        await t.Step("status update ignores spec", () => keys.UpdateStatusAsync(current)!);
        current = await keys.GetAsync("default", "life");
        current["status"]!["keyPrefix"] = "tg-changed";
        current["metadata"]!["labels"]!["c"] = "3";
        await t.Step("main update ignores status", () => keys.UpdateAsync(current)!);
        var stale = (JsonObject)current.DeepClone();
        await t.Step("stale update", () => keys.UpdateAsync(stale)!);
        var unconditional = await keys.GetAsync("default", "life");
        unconditional["metadata"]!.AsObject().Remove("resourceVersion");
        await t.Step("update without resourceVersion", () => keys.UpdateAsync(unconditional)!);
        await t.Step("status patch", () => keys.PatchStatusAsync("default", "life", Node("""{"status":{"requests":5},"spec":{"owner":"ignored"}}"""))!);

        await t.Step("delete with stale resourceVersion", () => keys.DeleteAsync("default", "life", new DeleteOptions { Preconditions = new Preconditions(ResourceVersion: "1") }));
        await t.Step("bad name", () => keys.CreateAsync(ApiServerTranscript.Parse("""
            apiVersion: tokengate.io/v1alpha1
            kind: ApiKey
            metadata: { name: Bad_Name, namespace: default }
            spec: { owner: demo }
            """))!);
        await t.Step("add finalizer", () => keys.PatchAsync("default", "life", Node("""{"metadata":{"finalizers":["tokengate.io/finalizer"]}}"""))!, Meta);
        await t.Step("delete with a finalizer", () => keys.DeleteAsync("default", "life"), Meta);
        await t.Step("get while deleting", () => keys.GetAsync("default", "life")!, Meta);
        await t.Step("delete again", () => keys.DeleteAsync("default", "life"), Meta);
        await t.Step("spec patch while deleting", () => keys.PatchAsync("default", "life", Node("""{"spec":{"description":"late"}}"""))!, Meta);
        await t.Step("new finalizer while deleting", () => keys.PatchAsync("default", "life", Node("""{"metadata":{"finalizers":["tokengate.io/finalizer","other.io/x"]}}"""))!, Meta);
        await t.Step("remove finalizer", () => keys.PatchAsync("default", "life", Node("""{"metadata":{"finalizers":null}}"""))!, Meta);
        await t.Step("get after", () => keys.GetAsync("default", "life")!);
        await t.Step("delete missing", () => keys.DeleteAsync("default", "life"));
        await t.Step("delete with stale uid", async () =>
        {
            await keys.CreateAsync(ApiKey());
            return await keys.DeleteAsync("default", "life", new DeleteOptions { Preconditions = new Preconditions(Uid: created!["metadata"]!["uid"]!.GetValue<string>() == "x" ? "y" : "6c1e9f5e-1111-2222-3333-444455556666") });
        });
    });

    [KubeFact]
    public Task Secrets_are_stored_and_validated_the_same() => CompareAsync(async t =>
    {
        var secrets = t.For(ResourceDefinition.Secrets);
        await t.Step("create with stringData", () => secrets.CreateAsync(ApiServerTranscript.Parse("""
            apiVersion: v1
            kind: Secret
            metadata: { name: s1, namespace: default }
            data: { a: YQ== }
            stringData: { b: bee, a: ay }
            """))!);
        var current = await secrets.GetAsync("default", "s1");
        current["metadata"]!.AsObject().Remove("resourceVersion");
        current["data"]!["c"] = "Yw==";
        await t.Step("update without resourceVersion", () => secrets.UpdateAsync(current)!);
        await t.Step("bad key", () => secrets.CreateAsync(ApiServerTranscript.Parse("""
            apiVersion: v1
            kind: Secret
            metadata: { name: s2, namespace: default }
            data: { "a b": YQ== }
            """))!);
        await t.Step("bad name", () => secrets.CreateAsync(ApiServerTranscript.Parse("""
            apiVersion: v1
            kind: Secret
            metadata: { name: Bad_Name, namespace: default }
            """))!);
        await t.Step("type change", () => secrets.PatchAsync("default", "s1", Node("""{"type":"kubernetes.io/tls"}"""))!);
        await t.Step("owner reference", () => secrets.PatchAsync("default", "s1", Node("""{"metadata":{"ownerReferences":[{"apiVersion":"tokengate.io/v1alpha1","kind":"ApiKey","name":"demo","uid":"6c1e9f5e-1111-2222-3333-444455556666","controller":true,"blockOwnerDeletion":true}]}}"""))!, Meta);
    });

    [KubeFact]
    public Task Leases_and_events_are_stored_the_same() => CompareAsync(async t =>
    {
        var now = DateTimeOffset.UtcNow.ToString(KubernetesMicroTimeConverter.Format, System.Globalization.CultureInfo.InvariantCulture);
        await t.Step("lease", () => t.For(ResourceDefinition.Leases).CreateAsync(Node($$$"""
            {"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"l","namespace":"default"},
             "spec":{"holderIdentity":"a","leaseDurationSeconds":15,"acquireTime":"{{{now}}}","renewTime":"{{{now}}}","leaseTransitions":0}}
            """))!);
        await t.Step("lease without spec times", () => t.For(ResourceDefinition.Leases).CreateAsync(Node("""
            {"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"m","namespace":"default"},"spec":{}}
            """))!);
        var recorder = new Gateway.Kubernetes.Runtime.EventRecorder(t.Cluster.Admin, new Gateway.Kubernetes.Runtime.EventRecorderOptions { Component = "tokengate-operator", Instance = "pod-1" });
        var involved = new ObjectReference { ApiVersion = "tokengate.io/v1alpha1", Kind = "ApiKey", Namespace = "default", Name = "demo", Uid = "6c1e9f5e-1111-2222-3333-444455556666" };
        t.Note("recorded", (await recorder.NormalAsync(involved, "KeyIssued", "Issued key version 1")).ToString());
        t.Note("recorded again", (await recorder.NormalAsync(involved, "KeyIssued", "Issued key version 1")).ToString());
        var events = (await t.For(ResourceDefinition.Events).ListAsync("default")).Items.ToList();
        t.Note("event count", events.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var e in events)
        {
            e["metadata"]!["name"] = "<name>"; // generated from the object name and a random or time-based suffix
            t.Note("event", ApiServerTranscript.Canonical(e));
        }
    });

    [KubeFact]
    public Task Lists_page_and_select_the_same() => CompareAsync(async t =>
    {
        var keys = Keys(t);
        foreach (var (name, team) in new[] { ("k1", "a"), ("k2", "b"), ("k3", "a") })
        {
            await keys.CreateAsync(Node($$$"""{"apiVersion":"tokengate.io/v1alpha1","kind":"ApiKey","metadata":{"name":"{{{name}}}","namespace":"default","labels":{"team":"{{{team}}}"}},"spec":{"owner":"demo"}}"""));
        }
        var page = await keys.ListAsync("default", new ListOptions { Limit = 2 });
        t.Note("page 1", $"{string.Join(",", page.Items.Select(i => i["metadata"]!["name"]))} continue={page.Continue is not null}");
        var rest = await keys.ListAsync("default", new ListOptions { Limit = 2, Continue = page.Continue });
        t.Note("page 2", $"{string.Join(",", rest.Items.Select(i => i["metadata"]!["name"]))} continue={rest.Continue is not null}");
        foreach (var selector in new[] { "team=a", "team!=a", "team in (b)", "!team", "team" })
        {
            var l = await keys.ListAsync("default", new ListOptions { LabelSelector = selector });
            t.Note("selector " + selector, string.Join(",", l.Items.Select(i => i["metadata"]!["name"])));
        }
        await t.Step("bad selector", async () => { await keys.ListAsync("default", new ListOptions { LabelSelector = "team==" }); return null; });
        var (code, body) = await t.RawAsync(HttpMethod.Get, "apis/tokengate.io/v1alpha1/namespaces/default/apikeys?limit=1");
        var list = (JsonObject)JsonNode.Parse(body)!;
        t.Note("raw list", $"{code} kind={list["kind"]} apiVersion={list["apiVersion"]} remaining={list["metadata"]?["remainingItemCount"]} itemKind={list["items"]?[0]?["kind"]}");

        // A continue token from before a compaction: 410 Expired (the storage cannot serve that snapshot any more).
        var first = await keys.ListAsync("default", new ListOptions { Limit = 1 });
        await keys.PatchAsync("default", "k1", Node("""{"metadata":{"labels":{"touched":"yes"}}}"""));
        await t.Cluster.CompactAsync();
        var (expiredCode, expiredBody) = await t.RawAsync(HttpMethod.Get, "apis/tokengate.io/v1alpha1/namespaces/default/apikeys?limit=1&continue=" + Uri.EscapeDataString(first.Continue!));
        var status = (JsonObject)JsonNode.Parse(expiredBody)!;
        t.Note("expired continue", $"{expiredCode} {status["reason"]} '{status["message"]}' newContinue={status["metadata"]?["continue"] is not null}");
        await t.Step("typed client", async () => { await keys.ListAsync("default", new ListOptions { Limit = 1, Continue = first.Continue }); return null; });
        await t.Step("exact list before the compaction", async () => { await keys.ListAsync("default", new ListOptions { ResourceVersion = first.ResourceVersion, ResourceVersionMatch = "Exact" }); return null; });
    });

    [KubeFact]
    public Task Watches_deliver_the_same_events() => CompareAsync(async t =>
    {
        var keys = Keys(t);
        var start = await keys.ListAsync("default");
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var seen = new List<string>();
        var watch = Task.Run(async () =>
        {
            await foreach (var e in keys.WatchAsync("default", new WatchOptions { ResourceVersion = start.ResourceVersion }, cts.Token))
            {
                if (e.Type == WatchEventType.Bookmark) continue;
                seen.Add($"{e.Type} {e.Metadata.Name} gen={e.Metadata.Generation} deleting={e.Metadata.DeletionTimestamp is not null}");
                if (e.Type == WatchEventType.Deleted) return;
            }
        }, cts.Token);
        await keys.CreateAsync(Node("""{"apiVersion":"tokengate.io/v1alpha1","kind":"ApiKey","metadata":{"name":"w","namespace":"default","finalizers":["tokengate.io/finalizer"]},"spec":{"owner":"demo"}}"""));
        await keys.PatchAsync("default", "w", Node("""{"spec":{"description":"x"}}"""));
        await keys.PatchStatusAsync("default", "w", Node("""{"status":{"requests":1}}"""));
        await keys.DeleteAsync("default", "w");
        await keys.PatchAsync("default", "w", Node("""{"metadata":{"finalizers":null}}"""));
        await watch;
        foreach (var s in seen) t.Note("watch", s);

        // A watch from a resourceVersion the server no longer has: 410 Expired, as an ERROR event or a status.
        var (code, line) = await t.RawAsync(HttpMethod.Get, "apis/tokengate.io/v1alpha1/namespaces/default/apikeys?watch=1&resourceVersion=1");
        var ev = JsonNode.Parse(line)!;
        var status = ev["object"] ?? ev;
        t.Note("too old", $"{code} type={ev["type"]} code={status["code"]} reason={status["reason"]} message={ApiServerTranscript.Scrub(status["message"]?.GetValue<string>())}");
    });

    private static JsonObject Node(string json) => (JsonObject)JsonNode.Parse(json)!;

    private static JsonNode Meta(JsonObject o) => new JsonObject
    {
        ["generation"] = o["metadata"]?["generation"]?.DeepClone(),
        ["deleting"] = o["metadata"]?["deletionTimestamp"] is not null,
        ["finalizers"] = o["metadata"]?["finalizers"]?.DeepClone(),
        ["labels"] = o["metadata"]?["labels"]?.DeepClone(),
        ["spec"] = o["spec"]?.DeepClone(),
    };
}
