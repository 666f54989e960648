using Gateway.Testing;
using Gateway.Testing.Kubernetes;
using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>The real-server harness installs exactly the operator's RBAC, from config/rbac or a rendered chart.</summary>
public sealed class OperatorRbacSelectionTests
{
    [Fact]
    public void Reads_the_operator_ServiceAccount_and_its_bound_roles_from_config_rbac()
    {
        var rbac = OperatorRbac.FromKustomize(RepoPaths.Root);

        Assert.Equal(RealKubeClusterNames.OperatorServiceAccount, rbac.ServiceAccount);
        Assert.Equal(RealKubeClusterNames.OperatorNamespace, rbac.Namespace);
        Assert.Equal(["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"],
            rbac.Objects.Select(o => o["kind"]!.GetValue<string>()).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void From_a_rendered_chart_takes_only_what_is_bound_to_the_operator()
    {
        var docs = FakeCrdSchema.ParseYaml("""
            apiVersion: v1
            kind: ServiceAccount
            metadata: { name: tokengate-operator, namespace: tg }
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: { name: tokengate-proxy, namespace: tg }
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata: { name: tokengate-operator }
            rules: [ { apiGroups: [tokengate.io], resources: [apikeys], verbs: [get] } ]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRole
            metadata: { name: unrelated }
            rules: []
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: ClusterRoleBinding
            metadata: { name: tokengate-operator }
            roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: tokengate-operator }
            subjects: [ { kind: ServiceAccount, name: tokengate-operator, namespace: tg } ]
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: tokengate-operator, namespace: tg }
            """);

        var rbac = OperatorRbac.Select("chart", docs);

        Assert.Equal("tg", rbac.Namespace);
        Assert.Equal(["ServiceAccount/tokengate-operator", "ClusterRole/tokengate-operator", "ClusterRoleBinding/tokengate-operator"],
            rbac.Objects.Select(o => $"{o["kind"]}/{o["metadata"]!["name"]}"));
    }
}
