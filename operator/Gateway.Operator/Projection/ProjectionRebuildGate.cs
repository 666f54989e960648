namespace Gateway.Operator.Projection;

/// <summary>
/// Keeps the ledger writer and a rebuild of the Redis balances apart: a rebuild seeds each balance from the ledger's
/// sum, so no batch of usage may be between "read from the stream" and "committed" while it runs — a batch read
/// before Redis lost its data and committed after the seeding read the ledger would be charged nowhere.
/// </summary>
public sealed class ProjectionRebuildGate
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Waits for the gate; dispose the result to leave it.</summary>
    public async Task<IDisposable> EnterAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        return new Exit(_gate);
    }

    private sealed class Exit(SemaphoreSlim gate) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) gate.Release();
        }
    }
}
