using System.Text.Json.Nodes;
using Gateway.Kubernetes.Client;

namespace Gateway.Testing.Kubernetes.Envtest;

/// <summary>Where the built-in kinds that tests create live in the API (what kubectl learns from discovery).</summary>
public static class KubeObjects
{
    public static ResourceDefinition Namespaces { get; } = new("", "v1", "namespaces", "Namespace", Namespaced: false);
    public static ResourceDefinition ServiceAccounts { get; } = new("", "v1", "serviceaccounts", "ServiceAccount");
    public static ResourceDefinition Roles { get; } = new("rbac.authorization.k8s.io", "v1", "roles", "Role");
    public static ResourceDefinition RoleBindings { get; } = new("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding");
    public static ResourceDefinition ClusterRoles { get; } = new("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", Namespaced: false);
    public static ResourceDefinition ClusterRoleBindings { get; } = new("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", Namespaced: false);
    public static ResourceDefinition Crds { get; } = new("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", Namespaced: false);

    public static ResourceDefinition? ForKind(string kind) => kind switch
    {
        "Namespace" => Namespaces,
        "ServiceAccount" => ServiceAccounts,
        "Secret" => ResourceDefinition.Secrets,
        "ConfigMap" => ResourceDefinition.ConfigMaps,
        "Event" => ResourceDefinition.Events,
        "Lease" => ResourceDefinition.Leases,
        "Role" => Roles,
        "RoleBinding" => RoleBindings,
        "ClusterRole" => ClusterRoles,
        "ClusterRoleBinding" => ClusterRoleBindings,
        "CustomResourceDefinition" => Crds,
        _ => null,
    };

    /// <summary>Creates a built-in object (as <c>kubectl create -f</c>), in <paramref name="ns"/> when given.</summary>
    public static Task<JsonObject> CreateAsync(KubernetesClient client, JsonObject doc, string? ns = null)
    {
        var kind = doc["kind"]!.GetValue<string>();
        var definition = ForKind(kind) ?? throw new ArgumentException($"Unknown kind {kind}.", nameof(doc));
        if (ns is not null && definition.Namespaced) doc["metadata"]!["namespace"] = ns;
        return client.Resource<JsonObject>(definition).CreateAsync(doc, definition.Namespaced ? doc["metadata"]?["namespace"]?.GetValue<string>() ?? "default" : null);
    }
}
