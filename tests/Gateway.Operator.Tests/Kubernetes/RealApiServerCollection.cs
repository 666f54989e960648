using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Operator.Tests.Kubernetes;

/// <summary>
/// The test classes that share one real API server (KUBEBUILDER_ASSETS): they run one after another, each
/// test on a cluster emptied by the fixture, while the fake-server variants run in parallel as before.
/// </summary>
[CollectionDefinition(Name)]
public sealed class RealApiServerCollection : ICollectionFixture<RealApiServerFixture>
{
    public const string Name = "real-apiserver";
}
