using Gateway.Testing.Kubernetes.Envtest;

namespace Gateway.Kubernetes.Tests;

/// <summary>The classes of this assembly that share one real API server (KUBEBUILDER_ASSETS), one test at a time.</summary>
[CollectionDefinition(Name)]
public sealed class RealApiServerCollection : ICollectionFixture<RealApiServerFixture>
{
    public const string Name = "real-apiserver";
}
