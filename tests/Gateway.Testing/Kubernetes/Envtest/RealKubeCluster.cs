using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>
/// A real API server set up as a platform team installs TokenGate: the chart's CRDs (Established), the
/// operator's namespace, ServiceAccount and RBAC, and a kubeconfig holding that ServiceAccount's token from
/// the TokenRequest API, so every call the operator makes is checked by the RBAC authorizer. One per test
/// collection; <see cref="ResetAsync"/> empties it between tests.
/// </summary>
public sealed class RealKubeCluster : IKubeTestCluster
{
    private static readonly string[] SystemNamespaces = ["kube-system", "kube-public", "kube-node-lease"];
    private readonly RealApiServer _server;
    private readonly List<ResourceDefinition> _customTypes;
    private readonly JsonObject? _leaderElectionRole;
    private readonly JsonObject? _leaderElectionBinding;

    private RealKubeCluster(RealApiServer server, List<ResourceDefinition> customTypes, string operatorKubeconfig, OperatorRbac.Manifests rbac)
    {
        _server = server;
        _customTypes = customTypes;
        OperatorKubeconfigPath = operatorKubeconfig;
        RbacSource = rbac.Source;
        // The namespaced Role that grants Leases, and its binding (config/rbac/leader_election_role.yaml or the chart's).
        _leaderElectionRole = rbac.Objects.FirstOrDefault(o => o["kind"]!.GetValue<string>() == "Role"
            && (o["rules"] as JsonArray ?? []).Any(r => (r?["resources"] as JsonArray ?? []).Any(x => x?.GetValue<string>() == "leases")));
        _leaderElectionBinding = _leaderElectionRole is null ? null : rbac.Objects.FirstOrDefault(o => o["kind"]!.GetValue<string>() == "RoleBinding"
            && o["roleRef"]?["name"]?.GetValue<string>() == _leaderElectionRole["metadata"]!["name"]!.GetValue<string>());
    }

    public string Name => "real";
    public KubernetesClient Admin => _server.Admin;
    public string AdminKubeconfigPath => _server.AdminKubeconfigPath;
    public string OperatorKubeconfigPath { get; }
    public string OperatorNamespace => RealKubeClusterNames.OperatorNamespace;
    public FakeApiServer? Fake => null;
    public RealApiServer Server => _server;

    /// <summary>Where the operator's RBAC came from ("helm template …" or "config/rbac").</summary>
    public string RbacSource { get; }

    public static async Task<RealKubeCluster> StartAsync(string repoRoot)
    {
        var server = await RealApiServer.StartAsync();
        try
        {
            var types = await InstallCrdsAsync(server.Admin, Path.Combine(repoRoot, "charts", "tokengate", "crds"));
            var rbac = await OperatorRbac.LoadAsync(repoRoot, RealKubeClusterNames.OperatorNamespace);
            await KubeObjects.CreateAsync(server.Admin, new JsonObject
            {
                ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = rbac.Namespace },
            });
            foreach (var o in rbac.Objects) await KubeObjects.CreateAsync(server.Admin, (JsonObject)o.DeepClone());
            var token = await server.CreateTokenAsync(rbac.Namespace, rbac.ServiceAccount);
            var kubeconfig = server.WriteTokenKubeconfig("operator", token, rbac.Namespace);
            return new RealKubeCluster(server, types, kubeconfig, rbac);
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Creates the CRDs and waits until each is Established (the server compiled its schema and CEL rules).</summary>
    private static async Task<List<ResourceDefinition>> InstallCrdsAsync(KubernetesClient admin, string directory)
    {
        var crds = admin.Resource<JsonObject>(KubeObjects.Crds);
        var types = new List<ResourceDefinition>();
        foreach (var file in System.IO.Directory.GetFiles(directory, "*.yaml").Order(StringComparer.Ordinal))
        {
            foreach (var crd in FakeCrdSchema.ParseYaml(await File.ReadAllTextAsync(file)))
            {
                await crds.CreateAsync(crd);
                var spec = crd["spec"]!;
                var version = spec["versions"]!.AsArray().First(v => v!["served"]?.GetValue<bool>() == true)!["name"]!.GetValue<string>();
                types.Add(new ResourceDefinition(spec["group"]!.GetValue<string>(), version, spec["names"]!["plural"]!.GetValue<string>(),
                    spec["names"]!["kind"]!.GetValue<string>(), spec["scope"]?.GetValue<string>() != "Cluster"));
            }
        }
        foreach (var type in types)
        {
            var name = type.Plural + "." + type.Group;
            await Eventually.TrueAsync(async () =>
            {
                var crd = await crds.GetAsync(null, name);
                return (crd["status"]?["conditions"] as JsonArray ?? []).Any(c => c?["type"]?.GetValue<string>() == "Established" && c["status"]?.GetValue<string>() == "True");
            }, $"CRD {name} to be Established", TimeSpan.FromSeconds(60));
        }
        return types;
    }

    public async Task EnsureNamespaceAsync(string ns)
    {
        if (await Admin.Resource<JsonObject>(KubeObjects.Namespaces).TryGetAsync(null, ns) is not null) return;
        try
        {
            await KubeObjects.CreateAsync(Admin, new JsonObject { ["apiVersion"] = "v1", ["kind"] = "Namespace", ["metadata"] = new JsonObject { ["name"] = ns } });
        }
        catch (KubernetesApiException e) when (e.Code == 409) { }
    }

    public async Task GrantLeaderElectionInAsync(string ns)
    {
        await EnsureNamespaceAsync(ns);
        if (_leaderElectionRole is null || _leaderElectionBinding is null)
        {
            throw new InvalidOperationException($"{RbacSource} has no Role granting Leases bound to the operator: nothing to grant in namespace {ns}.");
        }
        foreach (var template in new[] { _leaderElectionRole, _leaderElectionBinding })
        {
            var o = (JsonObject)template.DeepClone();
            o["metadata"]!.AsObject().Remove("resourceVersion");
            try { await KubeObjects.CreateAsync(Admin, o, ns); }
            catch (KubernetesApiException e) when (e.Code == 409) { }
        }
    }

    public Task CompactAsync() => _server.CompactEtcdAsync();

    /// <summary>
    /// Removes what a test left: TokenGate objects (finalizers stripped: no operator runs now), Secrets,
    /// Events and Leases outside the system namespaces, and per-namespace leader-election grants. Nothing
    /// garbage-collects on a server without a controller-manager, so this is explicit.
    /// </summary>
    public async Task ResetAsync()
    {
        foreach (var type in _customTypes)
        {
            var client = Admin.Resource<JsonObject>(type);
            foreach (var o in (await client.ListAllAsync()).Items)
            {
                var (ns, name) = (o["metadata"]!["namespace"]?.GetValue<string>(), o["metadata"]!["name"]!.GetValue<string>());
                try
                {
                    if (o["metadata"]!["finalizers"] is JsonArray { Count: > 0 })
                    {
                        await client.PatchAsync(ns, name, new JsonObject { ["metadata"] = new JsonObject { ["finalizers"] = null } });
                    }
                    await client.DeleteAsync(ns, name);
                }
                catch (KubernetesApiException e) when (e.Code == 404) { }
            }
            await Eventually.TrueAsync(async () => (await client.ListAsync()).Entries.Count == 0, $"every {type.Kind} to be gone");
        }
        await DeleteAllAsync(ResourceDefinition.Secrets);
        await DeleteAllAsync(ResourceDefinition.Events);
        await DeleteAllAsync(ResourceDefinition.Leases);
        await DeleteAllAsync(KubeObjects.RoleBindings, o => o["metadata"]!["namespace"]!.GetValue<string>() != OperatorNamespace);
        await DeleteAllAsync(KubeObjects.Roles, o => o["metadata"]!["namespace"]!.GetValue<string>() != OperatorNamespace);
    }

    private async Task DeleteAllAsync(ResourceDefinition type, Func<JsonObject, bool>? where = null)
    {
        var client = Admin.Resource<JsonObject>(type);
        foreach (var o in (await client.ListAllAsync()).Items)
        {
            var ns = o["metadata"]!["namespace"]?.GetValue<string>();
            if (ns is not null && SystemNamespaces.Contains(ns)) continue;
            if (where is not null && !where(o)) continue;
            try { await client.DeleteAsync(ns, o["metadata"]!["name"]!.GetValue<string>()); }
            catch (KubernetesApiException e) when (e.Code == 404) { }
        }
    }

    public ValueTask DisposeAsync() => _server.DisposeAsync();
}
