namespace Gateway.Benchmarks.Portal;

/// <summary>A DbContext factory over one connection string, as the portal's DI container would give the page models.</summary>
internal sealed class BenchContextFactory(string connectionString) : Microsoft.EntityFrameworkCore.IDbContextFactory<Gateway.Core.Storage.TokenGateDbContext>
{
    public Gateway.Core.Storage.TokenGateDbContext CreateDbContext() => Gateway.Core.Storage.StorageServiceCollectionExtensions.CreateContext(connectionString);
}

/// <summary>A clock that moves past the admin spend snapshot's refresh interval on demand.</summary>
internal sealed class SpendSteppingClock : TimeProvider
{
    private long _ticks;
    public void Step() => Interlocked.Add(ref _ticks, Gateway.Portal.Admin.SpendSnapshot.RefreshInterval.Ticks + 1);
    public override DateTimeOffset GetUtcNow() => base.GetUtcNow().AddTicks(Interlocked.Read(ref _ticks));
}
