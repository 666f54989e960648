using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;
using Gateway.Operator.Kubernetes;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// What only a real API server can show: the operator's kubeconfig really is its ServiceAccount, the RBAC
/// authorizer grants it exactly the least-privilege rules (and nothing more), and the CRDs' CEL rules are
/// compiled and enforced.
/// </summary>
[RealApiServer, Collection(RealApiServerCollection.Name)]
public sealed class RealApiServerRbacTests(RealApiServerFixture fixture) : IAsyncLifetime
{
    private IKubeTestCluster _cluster = null!;
    private KubernetesClient _operator = null!;

    public async Task InitializeAsync()
    {
        _cluster = await fixture.AcquireAsync();
        _operator = new KubernetesClient(KubeConfigLoader.LoadFile(_cluster.OperatorKubeconfigPath));
    }

    public async Task DisposeAsync()
    {
        _operator.Dispose();
        await _cluster.DisposeAsync();
    }

    [KubeFact]
    public async Task The_operator_kubeconfig_authenticates_as_its_ServiceAccount()
    {
        var review = await _operator.Resource<JsonObject>(new ResourceDefinition("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", Namespaced: false))
            .CreateAsync(new JsonObject { ["apiVersion"] = "authentication.k8s.io/v1", ["kind"] = "SelfSubjectReview", ["metadata"] = new JsonObject() });
        Assert.Equal($"system:serviceaccount:{RealKubeClusterNames.OperatorNamespace}:{RealKubeClusterNames.OperatorServiceAccount}",
            review["status"]!["userInfo"]!["username"]!.GetValue<string>());
    }

    [KubeFact]
    public void The_operator_RBAC_is_the_charts_when_it_has_templates_else_config_rbac()
    {
        var chart = Directory.Exists(Path.Combine(Gateway.Testing.RepoPaths.Root, "charts", "tokengate", "templates"))
            && OperatorRbac.FindHelm(Gateway.Testing.RepoPaths.Root) is not null;
        Assert.StartsWith(chart ? "helm template" : "config/rbac", fixture.RbacSource, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string, string?, bool> Permissions => new()
    {
        // What the operator does (issue #9: its resources, their status and finalizers, Secrets, Events, Leases).
        { "tokengate.io", "apikeys", "watch", null, true },
        { "tokengate.io", "userquotas", "list", null, true },
        { "tokengate.io", "upstreamaccounts", "patch", "default", true },
        { "tokengate.io", "apikeys/status", "update", "default", true },
        { "tokengate.io", "apikeys/finalizers", "update", "default", true },
        { "", "secrets", "create", "team-a", true },
        { "", "secrets", "delete", "default", true },
        { "", "events", "create", "default", true },
        { "", "events", "patch", "default", true },
        { "coordination.k8s.io", "leases", "update", RealKubeClusterNames.OperatorNamespace, true },
        // ApiKeys users ask for in the portal are created and deleted by the operator.
        { "tokengate.io", "apikeys", "create", "default", true },
        { "tokengate.io", "apikeys", "delete", "default", true },
        // What it must not be able to do.
        { "tokengate.io", "userquotas", "create", "default", false },
        { "tokengate.io", "userquotas", "delete", "default", false },
        { "tokengate.io", "upstreamaccounts", "delete", "default", false },
        { "", "configmaps", "list", null, false },
        { "", "pods", "list", "default", false },
        { "", "events", "delete", "default", false },
        { "coordination.k8s.io", "leases", "create", "default", false },
        { "coordination.k8s.io", "leases", "delete", RealKubeClusterNames.OperatorNamespace, false },
        { "rbac.authorization.k8s.io", "clusterroles", "escalate", null, false },
        { "apiextensions.k8s.io", "customresourcedefinitions", "update", null, false },
    };

    [Theory]
    [RealApiServerMemberData(nameof(Permissions))]
    public async Task The_RBAC_authorizer_grants_the_operator_exactly_its_rules(string group, string resource, string verb, string? ns, bool allowed)
    {
        var parts = resource.Split('/');
        var attributes = new JsonObject { ["group"] = group, ["resource"] = parts[0], ["verb"] = verb };
        if (parts.Length > 1) attributes["subresource"] = parts[1];
        if (ns is not null) attributes["namespace"] = ns;
        var review = await _operator.Resource<JsonObject>(new ResourceDefinition("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", Namespaced: false))
            .CreateAsync(new JsonObject
            {
                ["apiVersion"] = "authorization.k8s.io/v1",
                ["kind"] = "SelfSubjectAccessReview",
                ["metadata"] = new JsonObject(),
                ["spec"] = new JsonObject { ["resourceAttributes"] = attributes },
            });
        Assert.Equal(allowed, review["status"]?["allowed"]?.GetValue<bool>() == true);
    }

    [KubeFact]
    public async Task A_call_outside_the_rules_is_refused_with_403()
    {
        var e = await Assert.ThrowsAsync<KubernetesForbiddenException>(() =>
            _operator.Resource<JsonObject>(TokenGateResources.UserQuotas).DeleteAsync("default", "demo"));
        Assert.Equal("Forbidden", e.Reason);
        Assert.Contains("cannot delete resource \"userquotas\" in API group \"tokengate.io\" in the namespace \"default\"", e.Message, StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> CelViolations => new()
    {
        {
            "UpstreamAccount",
            "provider: openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}, oauth: {secretRef: {name: o}, tokenUrl: \"https://t\", clientId: c}}\nmodels: [{name: a}]",
            "set exactly one of apiKeySecretRef or oauth"
        },
        {
            "UpstreamAccount",
            "provider: azure-openai\nbaseUrl: https://x\ncredentials: {apiKeySecretRef: {name: s, key: k}}\nmodels: [{name: gpt-4o}]",
            "azure-openai models need upstreamName"
        },
    };

    [Theory]
    [RealApiServerMemberData(nameof(CelViolations))]
    public async Task The_crds_CEL_rules_reject_what_the_schema_alone_allows(string kind, string spec, string message)
    {
        var doc = ApiServerTranscript.Parse($"apiVersion: tokengate.io/v1alpha1\nkind: {kind}\nmetadata: {{name: cel, namespace: default}}\nspec:\n"
            + string.Join("\n", spec.Split('\n').Select(l => "  " + l)));
        var e = await Assert.ThrowsAsync<KubernetesInvalidException>(() => _cluster.Admin.Resource<JsonObject>(TokenGateResources.ForKind(kind)).CreateAsync(doc));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }
}
