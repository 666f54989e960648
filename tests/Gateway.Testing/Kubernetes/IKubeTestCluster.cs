using Gateway.Kubernetes.Client;

namespace Gateway.Testing.Kubernetes;

/// <summary>
/// An API server the Kubernetes acceptance tests run against: the loopback fake, or a real kube-apiserver
/// with the RBAC authorizer (<see cref="Envtest.RealKubeCluster"/>). The same tests run against both.
/// </summary>
public interface IKubeTestCluster : IAsyncDisposable
{
    /// <summary>"fake" or "real" (for messages).</summary>
    string Name { get; }

    /// <summary>A client allowed everything: setup and inspection, as a cluster admin's kubectl.</summary>
    KubernetesClient Admin { get; }

    /// <summary>A kubeconfig for <see cref="Admin"/>'s identity (for the real kubectl).</summary>
    string AdminKubeconfigPath { get; }

    /// <summary>The kubeconfig the operator runs with: on the real server, its least-privilege ServiceAccount's token.</summary>
    string OperatorKubeconfigPath { get; }

    /// <summary>The namespace of the operator's kubeconfig context (where its Lease lives by default).</summary>
    string OperatorNamespace { get; }

    /// <summary>The fake, when this is the fake (for fault injection); null on a real server.</summary>
    FakeApiServer? Fake { get; }

    /// <summary>Creates the namespace if the server needs one (the fake does not).</summary>
    Task EnsureNamespaceAsync(string ns);

    /// <summary>
    /// What an install limited to one namespace adds: the operator's leader-election Role bound in
    /// <paramref name="ns"/>, so its Lease may live there.
    /// </summary>
    Task GrantLeaderElectionInAsync(string ns);

    /// <summary>Drops the history older than now (etcd compaction; the fake's CompactHistory).</summary>
    Task CompactAsync();
}
