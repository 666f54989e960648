using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Gateway.Kubernetes.Runtime;

/// <summary>
/// The controller runtime's instruments on the "TokenGate.Operator" meter. Instrument names are the
/// Prometheus names, so an exporter can print them as they are.
/// </summary>
public static class OperatorMetrics
{
    public const string MeterName = "TokenGate.Operator";

    private static readonly Meter Meter = new(MeterName);
    private static readonly ConcurrentDictionary<object, (string Kind, Func<int> Depth)> Queues = new();
    private static readonly ConcurrentDictionary<object, Func<bool>> Electors = new();

    /// <summary>tokengate_operator_reconcile_total{kind,result}; result is success, error, requeue or requeue_after.</summary>
    public static readonly Counter<long> ReconcileTotal = Meter.CreateCounter<long>("tokengate_operator_reconcile_total", description: "Reconciles by kind and result.");

    /// <summary>tokengate_operator_reconcile_duration_seconds{kind}.</summary>
    public static readonly Histogram<double> ReconcileDuration = Meter.CreateHistogram<double>(
        "tokengate_operator_reconcile_duration_seconds", unit: "s", description: "Reconcile duration by kind.");

    /// <summary>tokengate_operator_queue_depth{kind}: items ready in each controller's work queue.</summary>
    public static readonly ObservableGauge<long> QueueDepth = Meter.CreateObservableGauge(
        "tokengate_operator_queue_depth",
        () => Queues.Values.GroupBy(q => q.Kind).Select(g => new Measurement<long>(g.Sum(q => (long)q.Depth()), new KeyValuePair<string, object?>("kind", g.Key))),
        description: "Items waiting in the work queue by kind.");

    /// <summary>tokengate_operator_leader: 1 while this process holds the leader lease.</summary>
    public static readonly ObservableGauge<int> Leader = Meter.CreateObservableGauge(
        "tokengate_operator_leader",
        () => new Measurement<int>(IsLeader ? 1 : 0),
        description: "1 when this replica is the leader (runs the controllers and the ledger writer).");

    /// <summary>True while this process leads (or runs without election, as the file source does).</summary>
    public static bool IsLeader => Electors.Values.Any(isLeader => isLeader());

    internal static IDisposable RegisterQueue(string kind, Func<int> depth)
    {
        var token = new object();
        Queues[token] = (kind, depth);
        return new Unregister(() => Queues.TryRemove(token, out _));
    }

    /// <summary>Adds a source of leadership for <see cref="Leader"/>; the file source registers one that is always true.
    /// Dispose the result when it stops.</summary>
    public static IDisposable RegisterElector(Func<bool> isLeader)
    {
        var token = new object();
        Electors[token] = isLeader;
        return new Unregister(() => Electors.TryRemove(token, out _));
    }

    private sealed class Unregister(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
