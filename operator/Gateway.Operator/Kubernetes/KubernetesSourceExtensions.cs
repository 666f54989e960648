using Gateway.Kubernetes.Client;
using Gateway.Kubernetes.Runtime;

namespace Gateway.Operator.Kubernetes;

/// <summary>Composition of <c>--source kubernetes [--kubeconfig PATH] [--namespace NS]</c>.</summary>
public static class KubernetesSourceExtensions
{
    /// <summary>
    /// Registers the Kubernetes source. The ledger writer and reservation sweeper must be registered as
    /// singletons but not as hosted services: here they run only on the leader.
    /// </summary>
    public static IServiceCollection AddKubernetesSource(this IServiceCollection services, IConfiguration configuration)
    {
        var options = KubernetesSourceOptions.From(configuration);
        // Resolve the cluster configuration now, so a bad --kubeconfig fails at start with its message.
        var clientConfiguration = KubernetesClientConfiguration.Load(options.Kubeconfig);
        services.AddSingleton(options);
        services.AddSingleton(sp => new KubernetesOperator(options, clientConfiguration, sp));
        services.AddHostedService(sp => new ControllerManagerService(sp.GetRequiredService<KubernetesOperator>().Manager));
        return services;
    }
}
