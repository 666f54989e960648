using Gateway.Kubernetes.Runtime;

namespace Gateway.Operator.Kubernetes;

/// <summary>
/// Runs a hosted service only while this replica leads: the ledger writer and the reservation sweeper
/// must have one instance cluster-wide. Started on each leadership term, stopped when it ends.
/// </summary>
public sealed class LeaderOnlyService(string name, Func<IHostedService> service) : IController
{
    public string Name => name;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var s = service();
        await s.StartAsync(cancellationToken);
        try
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // Leadership ended or the host is stopping.
        }
        finally
        {
            await s.StopAsync(CancellationToken.None);
        }
    }
}
