using Microsoft.Extensions.Hosting;

namespace Gateway.Core.Enforcement;

/// <summary>Runs the process's <see cref="UsageOutbox"/> checks (proxy and operator).</summary>
public sealed class UsageOutboxService(UsageOutbox outbox) : BackgroundService
{
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => outbox.RunAsync(stoppingToken);
}
