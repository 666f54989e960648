namespace Gateway.Operator.Reconcilers;

/// <summary>What a reconcile asks of its caller: nothing, or to come back after a delay.</summary>
public readonly record struct ReconcileOutcome(TimeSpan? RequeueAfter)
{
    public static readonly ReconcileOutcome Done = new(null);
    public static ReconcileOutcome After(TimeSpan delay) => new(delay);

    public static ReconcileOutcome Earliest(ReconcileOutcome a, ReconcileOutcome b) =>
        a.RequeueAfter is null ? b : b.RequeueAfter is null ? a : new(a.RequeueAfter < b.RequeueAfter ? a.RequeueAfter : b.RequeueAfter);
}
