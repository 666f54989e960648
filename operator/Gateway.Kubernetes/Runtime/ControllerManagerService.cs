using Microsoft.Extensions.Hosting;

namespace Gateway.Kubernetes.Runtime;

/// <summary>
/// Hosts a <see cref="ControllerManager"/> in a generic host: runs it until the host stops, at which point
/// controllers finish their in-flight reconciles and the leader lease is released (graceful shutdown).
/// </summary>
public sealed class ControllerManagerService(ControllerManager manager) : BackgroundService
{
    public ControllerManager Manager => manager;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) => manager.RunAsync(stoppingToken);
}
