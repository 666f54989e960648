using Gateway.Operator.Kubernetes;
using System.Text.Json.Nodes;
using Gateway.Testing;
using Gateway.Testing.Kubernetes;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>The deployment manifests in config/: RBAC is least privilege yet covers every call the operator makes.</summary>
public sealed class ManifestTests
{
    private static string Config(params string[] parts) => Path.Combine([RepoPaths.Root, "config", .. parts]);

    private static List<JsonObject> Docs(string folder) =>
        Directory.GetFiles(Config(folder), "*.yaml").Order(StringComparer.Ordinal)
            .SelectMany(f => FakeCrdSchema.ParseYaml(File.ReadAllText(f))).ToList();

    private static JsonObject Single(string folder, string kind) => Docs(folder).Single(d => d["kind"]!.GetValue<string>() == kind);

    private static IEnumerable<string> Strings(JsonNode? node) => (node as JsonArray ?? []).Select(n => n!.GetValue<string>());

    /// <summary>(apiGroup, resource, verb) triples the ClusterRole and the leader-election Role grant.</summary>
    internal static HashSet<(string Group, string Resource, string Verb)> Grants()
    {
        var grants = new HashSet<(string, string, string)>();
        foreach (var role in new[] { Single("rbac", "ClusterRole"), Single("rbac", "Role") })
        {
            foreach (var rule in role["rules"]!.AsArray())
            {
                foreach (var g in Strings(rule!["apiGroups"]))
                foreach (var r in Strings(rule["resources"]))
                foreach (var v in Strings(rule["verbs"]))
                {
                    grants.Add((g, r, v));
                }
            }
        }
        return grants;
    }

    [Fact]
    public void Rbac_grants_exactly_the_documented_least_privilege_set()
    {
        var grants = Grants();
        Assert.DoesNotContain(grants, g => g.Group == "*" || g.Resource == "*" || g.Verb == "*");
        foreach (var r in new[] { "apikeys", "userquotas", "upstreamaccounts" })
        {
            // ApiKeys are also created and deleted, for portal requests.
            string[] verbs = r == "apikeys" ? ["create", "delete", "get", "list", "patch", "update", "watch"] : ["get", "list", "patch", "update", "watch"];
            Assert.Equal(verbs, grants.Where(g => g.Resource == r).Select(g => g.Verb).Order());
            Assert.Equal(["patch", "update"], grants.Where(g => g.Resource == r + "/status").Select(g => g.Verb).Order());
            Assert.Equal(["update"], grants.Where(g => g.Resource == r + "/finalizers").Select(g => g.Verb));
        }
        Assert.Equal(["create", "delete", "get", "list", "patch", "update", "watch"], grants.Where(g => g.Resource == "secrets").Select(g => g.Verb).Order());
        Assert.Equal(["create", "patch"], grants.Where(g => g.Resource == "events").Select(g => g.Verb).Order());
        Assert.Equal(["create", "get", "update"], grants.Where(g => g.Resource == "leases").Select(g => g.Verb).Order());
        // 3 kinds × (5 + 2 status + 1 finalizers) + 2 (apikeys create/delete) + 7 secrets + 2 events + 3 leases: nothing else.
        Assert.Equal(3 * 8 + 2 + 7 + 2 + 3, grants.Count);

        // Leases only in the operator's namespace; both bindings name the operator's ServiceAccount.
        var sa = Single("rbac", "ServiceAccount");
        var ns = sa["metadata"]!["namespace"]!.GetValue<string>();
        Assert.Equal(ns, Single("rbac", "Role")["metadata"]!["namespace"]!.GetValue<string>());
        foreach (var binding in new[] { Single("rbac", "ClusterRoleBinding"), Single("rbac", "RoleBinding") })
        {
            var subject = Assert.Single(binding["subjects"]!.AsArray())!;
            Assert.Equal(("ServiceAccount", sa["metadata"]!["name"]!.GetValue<string>(), ns),
                (subject["kind"]!.GetValue<string>(), subject["name"]!.GetValue<string>(), subject["namespace"]!.GetValue<string>()));
        }
    }

    [Fact]
    public void The_deployment_runs_two_hardened_replicas_with_probes_on_8082_and_secrets_from_a_Secret()
    {
        var deployment = Docs("manager").Single(d => d["kind"]!.GetValue<string>() == "Deployment" && d["metadata"]!["name"]!.GetValue<string>() == "tokengate-operator");
        Assert.Equal(2, deployment["spec"]!["replicas"]!.GetValue<int>());
        var pod = deployment["spec"]!["template"]!["spec"]!;
        Assert.Equal(Single("rbac", "ServiceAccount")["metadata"]!["name"]!.GetValue<string>(), pod["serviceAccountName"]!.GetValue<string>());
        Assert.True(pod["securityContext"]!["runAsNonRoot"]!.GetValue<bool>());
        var c = Assert.Single(pod["containers"]!.AsArray())!;
        Assert.Equal(["--source", "kubernetes"], Strings(c["args"]));
        Assert.Equal(("/healthz", 8082), (c["livenessProbe"]!["httpGet"]!["path"]!.GetValue<string>(), c["livenessProbe"]!["httpGet"]!["port"]!.GetValue<int>()));
        Assert.Equal(("/readyz", 8082), (c["readinessProbe"]!["httpGet"]!["path"]!.GetValue<string>(), c["readinessProbe"]!["httpGet"]!["port"]!.GetValue<int>()));
        var sc = c["securityContext"]!;
        Assert.True(sc["readOnlyRootFilesystem"]!.GetValue<bool>());
        Assert.True(sc["runAsNonRoot"]!.GetValue<bool>());
        Assert.False(sc["allowPrivilegeEscalation"]!.GetValue<bool>());
        Assert.Equal(["ALL"], Strings(sc["capabilities"]!["drop"]));

        var env = c["env"]!.AsArray().ToDictionary(e => e!["name"]!.GetValue<string>(), e => e!);
        Assert.Equal("metadata.name", env["POD_NAME"]["valueFrom"]!["fieldRef"]!["fieldPath"]!.GetValue<string>());
        Assert.Equal("tokengate-postgres", env["ConnectionStrings__Postgres"]["valueFrom"]!["secretKeyRef"]!["name"]!.GetValue<string>());
        Assert.Equal("tokengate-redis", env["ConnectionStrings__Redis"]["valueFrom"]!["secretKeyRef"]!["name"]!.GetValue<string>());
        var pepperFile = env["TokenGate__PepperFile"]["value"]!.GetValue<string>();
        var mount = c["volumeMounts"]!.AsArray().Single(m => pepperFile.StartsWith(m!["mountPath"]!.GetValue<string>() + "/", StringComparison.Ordinal))!;
        var volume = pod["volumes"]!.AsArray().Single(v => v!["name"]!.GetValue<string>() == mount["name"]!.GetValue<string>())!;
        Assert.Equal("tokengate-pepper", volume["secret"]!["secretName"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("default")]
    [InlineData("rbac")]
    [InlineData("manager")]
    [InlineData("crd")]
    public void Kustomizations_list_only_files_and_folders_that_exist(string folder)
    {
        var k = FakeCrdSchema.ParseYaml(File.ReadAllText(Config(folder, "kustomization.yaml"))).Single();
        foreach (var r in Strings(k["resources"]))
        {
            var path = Path.GetFullPath(Path.Combine(Config(folder), r));
            Assert.True(File.Exists(path) || File.Exists(Path.Combine(path, "kustomization.yaml")), $"{folder}/kustomization.yaml lists missing '{r}'");
        }
    }

    [Fact]
    public void Samples_have_no_kustomization_because_kubectl_apply_f_would_try_to_create_it()
    {
        Assert.Empty(Directory.GetFiles(RepoPaths.Samples, "kustomization.y*ml"));
    }

    /// <summary>The calls the operator really makes (recorded by the fake) are all allowed by the manifests' RBAC.</summary>
    [Fact]
    public async Task Every_call_the_operator_makes_is_allowed_by_the_rbac_manifests()
    {
        await using var h = await KubernetesHarness.StartAsync(await KubernetesHarness.FakeClusterAsync());
        var server = h.Cluster.Fake!;
        await h.ApplySamplesAsync();
        var before = server.Requests.Count;
        await h.StartOperatorAsync();
        await h.ReadyAsync(TokenGateResources.ApiKeys, "demo");
        await h.ReadyAsync(TokenGateResources.UpstreamAccounts, "mock");
        await h.ReadyAsync(TokenGateResources.UserQuotas, "demo");
        await Eventually.TrueAsync(() => Task.FromResult(server.ListObjects(FakeApiServer.Events, "default").Count > 0), "an event");
        // kubectl delete ak demo: the finalizer path (revoke, delete the Secret, drop the finalizer).
        var operatorCalls = server.Requests.Skip(before).ToList();
        await h.ApiKeys.DeleteAsync("default", "demo");
        var afterDelete = server.Requests.Count;
        await Eventually.TrueAsync(() => Task.FromResult(server.GetObject(FakeApiServer.ApiKeys, "default", "demo") is null), "the ApiKey to be gone");
        operatorCalls.AddRange(server.Requests.Skip(afterDelete));

        var grants = Grants();
        var used = new HashSet<(string, string, string)>();
        foreach (var r in operatorCalls)
        {
            var call = Classify(r);
            used.Add(call);
            Assert.True(grants.Contains(call), $"RBAC does not allow {r.Method} {r.Path}{r.Query} ({call})");
        }
        // The run exercised the interesting verbs, so the check above means something.
        Assert.Contains(("", "secrets", "create"), used);
        Assert.Contains(("", "secrets", "delete"), used);
        Assert.Contains(("tokengate.io", "apikeys/status", "update"), used);
        Assert.Contains(("tokengate.io", "apikeys", "patch"), used);
        Assert.Contains(("coordination.k8s.io", "leases", "create"), used);
        Assert.Contains(("", "events", "create"), used);
    }

    internal static (string Group, string Resource, string Verb) Classify(FakeRequest r)
    {
        var seg = r.Path.Trim('/').Split('/');
        var (group, i) = seg[0] == "api" ? ("", 2) : (seg[1], 3);
        if (i < seg.Length && seg[i] == "namespaces") i += 2;
        var resource = seg[i];
        var name = i + 1 < seg.Length ? seg[i + 1] : null;
        if (i + 2 < seg.Length) resource += "/" + seg[i + 2];
        var verb = r.Method switch
        {
            "GET" when r.Query.Contains("watch=1", StringComparison.Ordinal) => "watch",
            "GET" when name is null => "list",
            "GET" => "get",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => r.Method,
        };
        return (group, resource, verb);
    }
}
